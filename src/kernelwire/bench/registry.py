"""Scenarios are pluggable: a registry of what ``python -m kernelwire.bench`` measures.

Adding a scenario
-----------------
1. Write a module (say ``kernelwire/bench/my_scenario.py``) with a
   :class:`Scenario` subclass decorated with :func:`register`::

       from .registry import Case, Measurement, Scenario, register

       @register
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

2. Add the module's import name to :data:`SCENARIO_MODULES` (or, from
   another distribution, expose it as an entry point in the group
   ``kernelwire.bench.scenarios``).

The runner interleaves contenders within each case, repeats everything for
``--rounds`` rounds, and computes medians, min-max and the kernelwire ratios
for every scenario the same way.  ``measure`` gets a
:class:`~kernelwire.bench.runner.Bench` with the options, scaled counts and
the two-process helpers (``bench.peers.pair``); a scenario that needs other
processes (a cluster, say) may start them in ``setup`` and stop them in
``teardown``.  Raise an exception from ``measure`` to record a failed sample.
"""

from __future__ import annotations

import argparse
import importlib
import typing as t
from dataclasses import dataclass, field
from importlib.metadata import entry_points

if t.TYPE_CHECKING:
    from .contenders import Contender
    from .runner import Bench

#: modules that define the built-in scenarios (imported in this order)
SCENARIO_MODULES = [
    "kernelwire.bench.scenarios",
    "kernelwire.bench.ipp_cluster",
    "kernelwire.bench.serialize_object",
]
ENTRY_POINT_GROUP = "kernelwire.bench.scenarios"

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


SCENARIOS: dict[str, type[Scenario]] = {}


def register(cls: type[Scenario]) -> type[Scenario]:
    """Class decorator: make a scenario known to the runner."""
    if cls.name in SCENARIOS and SCENARIOS[cls.name] is not cls:
        raise ValueError(f"scenario {cls.name!r} registered twice")
    SCENARIOS[cls.name] = cls
    return cls


def load() -> dict[str, type[Scenario]]:
    """Import every scenario module (built-in and entry points); returns the registry."""
    for module in SCENARIO_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()
    return SCENARIOS
