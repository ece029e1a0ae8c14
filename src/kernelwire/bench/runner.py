"""Run the enabled scenarios: contenders interleaved, several rounds, every sample kept.

Within a round each case is measured for every contender back to back, in
an order that rotates from round to round, so slow drifts of a shared
machine hit all contenders alike and per-round ratios compare neighbours.
"""

from __future__ import annotations

import argparse
import typing as t
from dataclasses import dataclass, field

from .contenders import Contender
from .payloads import Payload
from .processes import Peers
from .registry import Case, Measurement, Scenario


@dataclass
class Sample:
    """One measurement of one contender on one case in one round."""

    scenario: str
    case: str
    contender: str
    round: int
    unit: str
    measurement: Measurement | None = None
    error: str | None = None

    @property
    def value(self) -> float | None:
        return self.measurement.value(self.unit) if self.measurement else None

    def as_dict(self) -> dict[str, t.Any]:
        m = self.measurement
        return {
            "scenario": self.scenario,
            "case": self.case,
            "contender": self.contender,
            "round": self.round,
            "unit": self.unit,
            "value": self.value,
            "count": m.count if m else None,
            "seconds": m.seconds if m else None,
            "bytes_per_op": m.bytes_per_op if m else None,
            "extra": m.extra if m else {},
            "error": self.error,
        }


@dataclass
class Bench:
    """What a scenario's measure() gets: the options, counts and the peer processes."""

    options: argparse.Namespace
    peers: Peers

    def scaled(self, count: int) -> int:
        """A count scaled by --scale (never below 2: one warm-up is not a measurement)."""
        return max(2, round(count * self.options.scale))

    def count(self, payload: Payload) -> int:
        """Messages per sample for a payload, for this run's mode and scale."""
        return self.scaled(payload.quick_count if self.options.quick else payload.count)

    def session_class(self, contender: str) -> type:
        from .contenders import session_class

        return session_class(contender)


@dataclass
class Plan:
    """Which contenders run on which case: the run's shape, known before it starts."""

    rows: list[tuple[Scenario, Case, list[Contender]]] = field(default_factory=list)

    @property
    def samples_per_round(self) -> int:
        return sum(len(contenders) for _, _, contenders in self.rows)


class ProgressSink(t.Protocol):
    def begin(self, total: int) -> None: ...
    def step(self, description: str) -> None: ...
    def record(self, sample: Sample) -> None: ...
    def end(self) -> None: ...


def make_plan(
    scenarios: list[Scenario], contenders: list[Contender], options: argparse.Namespace
) -> Plan:
    plan = Plan()
    for scenario in scenarios:
        runnable = [c for c in contenders if scenario.supports(c)]
        if runnable:
            for case in scenario.cases(options):
                plan.rows.append((scenario, case, runnable))
    return plan


def run(bench: Bench, plan: Plan, progress: ProgressSink) -> list[Sample]:
    rounds = bench.options.rounds
    scenarios = list(dict.fromkeys(scenario for scenario, _, _ in plan.rows))
    samples: list[Sample] = []
    progress.begin(rounds * plan.samples_per_round)
    set_up: list[Scenario] = []
    try:
        for scenario in scenarios:
            scenario.setup(bench)
            set_up.append(scenario)
        for rnd in range(rounds):
            for scenario, case, contenders in plan.rows:
                shift = rnd % len(contenders)
                for contender in contenders[shift:] + contenders[:shift]:
                    progress.step(
                        f"round {rnd + 1}/{rounds} {scenario.name} {case.label}: {contender.label}"
                    )
                    sample = Sample(scenario.name, case.key, contender.name, rnd, case.unit)
                    try:
                        sample.measurement = scenario.measure(bench, case, contender)
                    except Exception as exc:  # keep going: the table shows what failed
                        sample.error = f"{type(exc).__name__}: {exc}"
                    samples.append(sample)
                    progress.record(sample)
    finally:
        for scenario in reversed(set_up):
            scenario.teardown(bench)
        progress.end()
    return samples
