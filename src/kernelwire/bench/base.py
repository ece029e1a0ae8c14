"""What every scenario is made of: Case, Measurement, Scenario, and the Bench it measures on.

Adding a scenario
-----------------
1. Write a :class:`Scenario` subclass (in ``scenarios.py``, or a module of
   its own such as ``kernelwire/bench/my_scenario.py``)::

       from .base import Case, Measurement, Scenario

       class TinyTasks(Scenario):
           name = "tiny-tasks"             # unique; used by --scenarios and in the JSON
           title = "2,000 tiny tasks"      # table and chart heading
           default = False                 # not in the default run ...
           kinds = ("session",)            # ... and only Session contenders apply

           @classmethod
           def add_arguments(cls, parser):  # optional: its own command-line options
               parser.add_argument("--tiny-tasks", action="store_true")

           def enabled(self, options):      # ... so enable it with that option too
               return options.tiny_tasks or super().enabled(options)

           def cases(self, options):
               return [Case("local/2000", "2,000 tasks", unit="s")]

           def measure(self, bench, case, contender):
               seconds = ...                # run it with bench.session_class(contender.name)
               return Measurement(count=2000, seconds=seconds)

2. Add the class to :data:`kernelwire.bench.runner.SCENARIOS`; ``--scenarios``
   then accepts its name.

The runner interleaves contenders within each case, repeats everything for
``--rounds`` rounds, and computes medians, min-max and the kernelwire ratios
for every scenario the same way.  ``measure`` gets a :class:`Bench` with the
options, scaled counts and the two-process helpers (``bench.peers.pair``); a
scenario that needs other processes (a cluster, say) may start them in
``setup`` and stop them in ``teardown``.  Raise an exception from
``measure`` to record a failed sample.
"""

from __future__ import annotations

import argparse
import typing as t
from dataclasses import dataclass, field

from .contenders import session_class

if t.TYPE_CHECKING:
    from .contenders import Contender
    from .payloads import Payload
    from .processes import Peers

#: units a case can report in; the time units are lower-is-better
RATE_UNITS = ("msg/s", "MB/s", "tasks/s")
TIME_UNITS = ("µs", "ms", "s")


@dataclass(frozen=True)
class Case:
    """One cell row of a scenario: e.g. tcp transport, 64 KB buffers."""

    key: str  # unique within the scenario, e.g. "tcp/64KB"
    label: str  # for tables and charts
    unit: str = "msg/s"  # one of RATE_UNITS or TIME_UNITS
    params: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.unit not in RATE_UNITS + TIME_UNITS:
            raise ValueError(f"unknown unit {self.unit!r}")


@dataclass(frozen=True)
class Measurement:
    """What one sample measured: ``count`` operations in ``seconds``."""

    count: int
    seconds: float
    bytes_per_op: int = 0  # for MB/s
    extra: dict = field(default_factory=dict)  # anything else worth keeping in the JSON

    def value(self, unit: str) -> float:
        """The sample in the case's unit."""
        per_second = self.count / self.seconds
        return {
            "msg/s": per_second,
            "tasks/s": per_second,
            "MB/s": per_second * self.bytes_per_op / 1e6,
            "µs": self.seconds / self.count * 1e6,
            "ms": self.seconds / self.count * 1e3,
            "s": self.seconds,
        }[unit]

    @property
    def speed(self) -> float:
        """Operations per second: what ratios compare (higher is faster)."""
        return self.count / self.seconds


class Scenario:
    """Base class of a benchmark scenario; see the module docstring."""

    name: t.ClassVar[str]
    title: t.ClassVar[str]
    default: t.ClassVar[bool] = True
    kinds: t.ClassVar[tuple[str, ...]] = ("session", "pyzmq", "floor")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this scenario's own command-line options (none by default)."""

    def enabled(self, options: argparse.Namespace) -> bool:
        chosen = options.scenarios
        return self.name in chosen if chosen else self.default

    def supports(self, contender: Contender) -> bool:
        return contender.kind in self.kinds

    def cases(self, options: argparse.Namespace) -> list[Case]:
        raise NotImplementedError

    def setup(self, bench: Bench) -> None:
        """Called once before the first sample."""

    def teardown(self, bench: Bench) -> None:
        """Called once after the last sample, even after a failure."""

    def measure(self, bench: Bench, case: Case, contender: Contender) -> Measurement:
        raise NotImplementedError


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

    @staticmethod
    def session_class(contender: str) -> type:
        """The Session class a session contender runs (see contenders.session_class)."""
        return session_class(contender)
