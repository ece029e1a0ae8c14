"""IPython Parallel end to end: a stock cluster against a kernelwire cluster.

Enabled by ``--ipyparallel`` (it starts two local clusters of two engines,
which takes a few seconds and all of a small machine).  Cases: 2,000 tiny
load-balanced tasks, and a 100 MB numpy array pushed to one engine and
pulled back.  Each contender gets its own cluster, started on first use:
``jupyter_client`` is stock everywhere, ``kernelwire`` is
``kernelwire.ipp.Cluster`` (controller, schedulers, engines, nannies and
client).  The clients live side by side in this process: each keeps the
Session class it was built with, and kernelwire is uninstalled again right
after its client is made so the other scenarios stay stock.
"""

from __future__ import annotations

import operator
import os
import tempfile
import time
import typing as t

from .registry import Case, Measurement, Scenario, register

if t.TYPE_CHECKING:
    import argparse

    from .contenders import Contender
    from .runner import Bench

TASKS = 2000
PUSH_BYTES = 100_000_000


@register
class IPyParallel(Scenario):
    name = "ipyparallel"
    title = "IPython Parallel cluster (2 engines)"
    default = False
    kinds = ("session",)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--ipyparallel",
            action="store_true",
            help="also measure whole ipyparallel clusters, stock vs kernelwire (slow)",
        )

    def enabled(self, options: argparse.Namespace) -> bool:
        return getattr(options, "ipyparallel", False) or super().enabled(options)

    def supports(self, contender: Contender) -> bool:
        # the cluster runs the default kernelwire core; the pure one has no cluster of its own
        return contender.name in ("kernelwire", "jupyter_client")

    def cases(self, options: argparse.Namespace) -> list[Case]:
        tasks = TASKS // 10 if options.quick else TASKS
        megabytes = PUSH_BYTES // 5 if options.quick else PUSH_BYTES
        return [
            Case(f"tasks/{tasks}", f"{tasks:,} tiny load-balanced tasks", "tasks/s", {"n": tasks}),
            Case(
                f"push-pull/{megabytes // 1_000_000}MB",
                f"{megabytes // 1_000_000} MB numpy push + pull",
                "MB/s",
                {"bytes": megabytes},
            ),
        ]

    def setup(self, bench: Bench) -> None:
        self._clusters: dict[str, t.Any] = {}
        self._clients: dict[str, t.Any] = {}
        self._ipython_dir = tempfile.TemporaryDirectory(prefix="kernelwire-bench-ipp-")

    def teardown(self, bench: Bench) -> None:
        for client in self._clients.values():
            client.close()
        for cluster in self._clusters.values():
            cluster.stop_cluster_sync()
        self._ipython_dir.cleanup()

    def _client(self, contender: str) -> t.Any:
        if contender in self._clients:
            return self._clients[contender]
        import kernelwire
        import kernelwire.ipp
        from kernelwire.install import original_session_class

        on = contender == "kernelwire"
        saved = os.environ.get("IPYTHONDIR")
        os.environ["IPYTHONDIR"] = self._ipython_dir.name
        try:
            cluster = kernelwire.ipp.Cluster(
                n=2,
                kernelwire_controller=on,
                kernelwire_engines=on,
                kernelwire_client=on,
            )
            try:
                client = cluster.start_and_connect_sync()
                client.wait_for_engines(2, timeout=120)
            except BaseException:
                cluster.stop_cluster_sync()
                raise
            self._clients[contender] = client
            self._clusters[contender] = cluster
        finally:
            kernelwire.uninstall()  # the client keeps its Session; others stay stock
            if saved is None:
                os.environ.pop("IPYTHONDIR", None)
            else:
                os.environ["IPYTHONDIR"] = saved
        expected = kernelwire.Session if on else original_session_class()
        if type(client.session) is not expected:
            raise RuntimeError(f"{contender} client runs {type(client.session)}")
        return client

    def measure(self, bench: Bench, case: Case, contender: Contender) -> Measurement:
        client = self._client(contender.name)
        if "n" in case.params:
            view = client.load_balanced_view()
            n = case.params["n"]
            start = time.perf_counter()
            results = [view.apply_async(operator.neg, i) for i in range(n)]
            for result in results:
                result.get(timeout=120)
            return Measurement(count=n, seconds=time.perf_counter() - start)

        import numpy as np

        size = case.params["bytes"]
        array = np.frombuffer(os.urandom(1000), dtype=np.uint8)
        array = np.resize(array, size)
        engine = client[client.ids[0]]
        start = time.perf_counter()
        engine.push({"pushed": array}, block=True)
        pulled = engine.pull("pushed", block=True)
        seconds = time.perf_counter() - start
        if pulled.nbytes != size or pulled[size // 2] != array[size // 2]:
            raise RuntimeError("pulled array differs")
        engine.execute("del pushed", block=True)
        return Measurement(count=2, seconds=seconds, bytes_per_op=size)
