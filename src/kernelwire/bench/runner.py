"""Run the enabled scenarios: contenders interleaved, several rounds, every sample kept.

:data:`SCENARIOS` lists the scenarios there are; ``--scenarios`` picks among them.

Within a round each case is measured for every contender back to back, in
an order that rotates from round to round, so slow drifts of a shared
machine hit all contenders alike and per-round ratios compare neighbours.
"""

from __future__ import annotations

import argparse
import typing as t
from dataclasses import dataclass, field

from .base import Bench, Case, Sample, Scenario
from .ipp_cluster import IPyParallel, IPyParallelAcrossHosts
from .scenarios import Latency, Throughput
from .serialize_object import SerializeObject

if t.TYPE_CHECKING:
    from .contenders import Contender

#: every scenario the command knows (``--scenarios`` takes their names), in table order
SCENARIOS: dict[str, type[Scenario]] = {
    cls.name: cls
    for cls in (Throughput, Latency, IPyParallel, IPyParallelAcrossHosts, SerializeObject)
}


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
