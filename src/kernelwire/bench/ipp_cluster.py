"""IPython Parallel end to end: a stock cluster against a kernelwire cluster, per workload.

Enabled by ``--ipyparallel``. Each contender runs in its own driver process
(``kernelwire.bench.ipp_driver``): a cluster of two engines with that
process as its client, everything stock for ``jupyter_client`` and
everything on kernelwire (``kernelwire.ipp.Cluster``: controller, Hub,
schedulers, engines, nannies, client, Session and object serialization) for
``kernelwire``, as users run them. The runner interleaves the two drivers
round by round. Workloads: tiny load-balanced tasks, ``apply`` on both
engines with an 8 MB array argument that is returned, ``scatter`` +
``gather`` of 100 MB, push + pull of a 100 MB array, and push + pull of 20
arrays of 1 MB nested two deep. Beside the wall time, every sample records
the CPU time each process of the cluster spent (client, Hub, schedulers and
heartbeat, engines, nannies): steadier than wall time on a shared machine.
"""

from __future__ import annotations

import statistics
import sys
import typing as t

from .base import Bench, Case, Measurement, Sample, Scenario
from .processes import LineProcess

if t.TYPE_CHECKING:
    import argparse

    from .contenders import Contender

#: (workload, label, size, repetitions per sample, unit); --quick divides sizes by 5
WORKLOADS = [
    ("tiny-tasks", "{n:,} tiny load-balanced tasks", 1000, 1, "tasks/s"),
    ("apply-array", "apply on 2 engines, {mb} MB argument returned", 8_000_000, 10, "ms"),
    ("scatter-gather", "scatter + gather of {mb} MB", 100_000_000, 2, "ms"),
    ("push-pull", "push + pull of a {mb} MB array", 100_000_000, 2, "ms"),
    ("push-pull-nested", "push + pull of 20 arrays, {mb} MB, nested two deep",
     20_000_000, 5, "ms"),
]
ROLES = ("client", "hub", "schedulers", "engines", "nannies")
STARTUP_TIMEOUT = 180.0
SAMPLE_TIMEOUT = 900.0


class IPyParallel(Scenario):
    name = "ipyparallel"
    title = "IPython Parallel cluster (2 engines), per workload"
    default = False
    kinds = ("session",)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--ipyparallel",
            action="store_true",
            help="also measure whole ipyparallel clusters, stock vs kernelwire (slow)",
        )
        parser.add_argument(
            "--ipp-controller-args",
            default="",
            metavar="ARGS",
            help="ipcontroller options for both clusters, e.g. '--scheme=pure --nodb'",
        )

    def enabled(self, options: argparse.Namespace) -> bool:
        return getattr(options, "ipyparallel", False) or super().enabled(options)

    def supports(self, contender: Contender) -> bool:
        # the cluster runs the default kernelwire core; the pure one has no cluster of its own
        return contender.name in ("kernelwire", "jupyter_client")

    def cases(self, options: argparse.Namespace) -> list[Case]:
        cases = []
        for workload, label, size, repeat, unit in WORKLOADS:
            if options.quick:
                size, repeat = size // 5, max(1, repeat // 2)
            text = label.format(n=size, mb=size // 1_000_000)
            params = {"workload": workload, "size": size, "repeat": repeat}
            cases.append(Case(f"{workload}/{size}", text, unit, params))
        return cases

    def setup(self, bench: Bench) -> None:
        self._controller_args = getattr(bench.options, "ipp_controller_args", "")
        self._drivers: dict[str, LineProcess] = {}
        self._runs: dict[str, dict] = {}

    def teardown(self, bench: Bench) -> None:
        for driver in self._drivers.values():
            driver.close()

    def _driver(self, contender: str) -> LineProcess:
        if contender not in self._drivers:
            argv = [sys.executable, "-m", "kernelwire.bench.ipp_driver", contender,
                    f"--controller-args={self._controller_args}"]
            driver = LineProcess(argv, stdin=True)
            try:
                self._runs[contender] = driver.read(timeout=STARTUP_TIMEOUT)["ready"]
            except BaseException:
                driver.proc.kill()
                driver.close()
                raise
            self._drivers[contender] = driver
        return self._drivers[contender]

    def measure(self, bench: Bench, case: Case, contender: Contender) -> Measurement:
        driver = self._driver(contender.name)
        driver.send(case.params)
        reply = driver.read(timeout=SAMPLE_TIMEOUT)
        count = reply["count"]
        bytes_per_op = case.params["size"] if case.unit == "MB/s" else 0
        cpu_per_op = {role: reply["cpu"].get(role, 0.0) / count for role in ROLES}
        return Measurement(
            count=count,
            seconds=reply["seconds"],
            bytes_per_op=bytes_per_op,
            extra={"cpu_seconds_per_op": cpu_per_op, "runs": self._runs[contender.name]},
        )

    def detail_table(self, cases: list[Case], samples: list[Sample]) -> tuple[str, list, list]:
        """CPU milliseconds per operation of each cluster process, median over the rounds."""
        header = ["case", "contender", "wall ms/op", *[f"{r} CPU" for r in ROLES], "total CPU"]
        rows = []
        runs: dict[str, dict] = {}
        for case in cases:
            for contender in ("jupyter_client", "kernelwire"):
                ms = [s.measurement for s in samples
                      if s.case == case.key and s.contender == contender and s.measurement]
                if not ms:
                    continue
                runs[contender] = ms[0].extra["runs"]
                cpu = {r: statistics.median(m.extra["cpu_seconds_per_op"][r] for m in ms) * 1e3
                       for r in ROLES}
                wall = statistics.median(m.seconds / m.count for m in ms) * 1e3
                total = statistics.median(
                    sum(m.extra["cpu_seconds_per_op"].values()) for m in ms) * 1e3
                rows.append([case.label, contender, f"{wall:,.2f}",
                             *[f"{cpu[r]:,.2f}" for r in ROLES], f"{total:,.2f}"])
        ran = "; ".join(f"{c}: " + ", ".join(f"{k} {v}" for k, v in info.items())
                        for c, info in runs.items())
        args = getattr(self, "_controller_args", "") or "defaults"
        caption = ("CPU time per operation of each cluster process (ms, median of the rounds; "
                   f"schedulers include the heartbeat monitor). ipcontroller: {args}. "
                   f"What ran: {ran}")
        return caption, header, rows


class IPyParallelAcrossHosts(IPyParallel):
    """The same workloads with the controller, two engine hosts and the client each
    in its own network namespace (``--ipyparallel --netns``; Linux, as root)."""

    name = "ipyparallel-netns"
    title = "IPython Parallel across network namespaces (controller, 2 engine hosts, client)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--netns",
            action="store_true",
            help="with --ipyparallel: also run its workloads across network namespaces "
            "(Linux, root)",
        )

    def enabled(self, options: argparse.Namespace) -> bool:
        netns = getattr(options, "ipyparallel", False) and getattr(options, "netns", False)
        return netns or Scenario.enabled(self, options)

    def _driver(self, contender: str) -> t.Any:
        if contender not in self._drivers:
            import shlex

            from .netns_hosts import HostsDriver

            args = shlex.split(getattr(self, "_controller_args", ""))
            driver = HostsDriver(contender, timeout=STARTUP_TIMEOUT, controller_args=args)
            self._runs[contender] = driver.read()["ready"]
            self._drivers[contender] = driver
        return self._drivers[contender]
