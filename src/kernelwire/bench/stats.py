"""Medians, ranges and ratios of the samples of one run.

Ratios are speed ratios (operations per second, so > 1 means the subject is
faster, whatever the case's unit) taken round by round: both contenders of
a ratio ran back to back in the same round, so the machine's drift cancels.
"""

from __future__ import annotations

import statistics
import typing as t
from dataclasses import asdict, dataclass

from .base import Sample

#: ratio baselines, in table order
BASELINES = ("jupyter_client", "pyzmq", "floor")


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass(frozen=True)
class Summary:
    scenario: str
    case: str
    contender: str
    unit: str
    spread: Spread | None  # None: every sample failed
    errors: list[str]

    def as_dict(self) -> dict[str, t.Any]:
        return asdict(self)


@dataclass(frozen=True)
class Ratio:
    scenario: str
    case: str
    subject: str
    baseline: str
    spread: Spread

    def as_dict(self) -> dict[str, t.Any]:
        return asdict(self)


Key = tuple[str, str, str]  # scenario, case, contender


def summarize(samples: list[Sample]) -> dict[Key, Summary]:
    groups: dict[Key, list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.scenario, s.case, s.contender), []).append(s)
    out = {}
    for key, group in groups.items():
        values = [s.value for s in group if s.value is not None]
        errors = sorted({s.error for s in group if s.error})
        out[key] = Summary(*key, group[0].unit, Spread.of(values), errors)
    return out


def ratios(
    samples: list[Sample], subject: str, baselines: t.Iterable[str] = BASELINES
) -> list[Ratio]:
    """subject's speed / each baseline's speed, per round, summarised per case."""
    speeds: dict[tuple[str, str, int], dict[str, float]] = {}
    for s in samples:
        if s.measurement is not None:
            speeds.setdefault((s.scenario, s.case, s.round), {})[s.contender] = s.measurement.speed
    per_case: dict[tuple[str, str, str], list[float]] = {}
    for (scenario, case, _), by_contender in speeds.items():
        if subject not in by_contender:
            continue
        for baseline in baselines:
            if baseline in by_contender and baseline != subject:
                per_case.setdefault((scenario, case, baseline), []).append(
                    by_contender[subject] / by_contender[baseline]
                )
    return [
        Ratio(scenario, case, subject, baseline, spread)
        for (scenario, case, baseline), values in per_case.items()
        if (spread := Spread.of(values)) is not None
    ]
