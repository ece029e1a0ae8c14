"""One IPython Parallel cluster and its client, driven over JSON lines: the cluster workloads.

``python -m kernelwire.bench.ipp_driver kernelwire|jupyter_client`` starts a
cluster of ``--engines`` engines (``kernelwire.ipp.Cluster``: everything on
kernelwire, or everything stock) with this process as its client, as a user
runs one, prints ``{"ready": ...}``, then runs one workload per request line
``{"workload": NAME, "size": N, "repeat": R}`` (R times in a row) and
answers the operations done, the wall time and the CPU time each process of
the cluster spent on them (client, hub, schedulers, engines,
nannies). Each contender's client thus lives in its own process, entirely
stock or entirely kernelwire (Session and object serialization), and the
runner interleaves the two drivers.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
import tempfile
import time
import typing as t

import numpy as np

WORKLOADS: dict[str, t.Callable[[t.Any, int], int]] = {}
WARM_UP_BYTES = 200_000


def workload(func: t.Callable[[t.Any, int], int]) -> t.Callable[[t.Any, int], int]:
    """A workload takes (client, size), checks the values and returns its operation count.

    One operation is one apply / scatter + gather / push + pull, or one tiny task.
    """
    WORKLOADS[func.__name__.replace("_", "-")] = func
    return func


@functools.cache
def _array(nbytes: int, seed: int = 0) -> np.ndarray:
    """Made once, outside the timing: filling 100 MB takes longer than sending it."""
    return np.random.default_rng(seed).random(nbytes // 8)


@workload
def tiny_tasks(client: t.Any, n: int) -> int:
    import operator

    view = client.load_balanced_view()
    results = [view.apply_async(operator.neg, i) for i in range(n)]
    for i, result in enumerate(results):
        if result.get(timeout=120) != -i:
            raise RuntimeError("tiny task returned a wrong value")
    return n


def _echo(x: t.Any) -> t.Any:
    return x


@workload
def apply_array(client: t.Any, nbytes: int) -> int:
    """apply on every engine with an array argument that is returned."""
    import ipyparallel as ipp

    array = _array(nbytes)
    echoed = client[:].apply_sync(ipp.interactive(_echo), array)
    for result in echoed:
        if result.shape != array.shape or result[-1] != array[-1]:
            raise RuntimeError("apply returned a different array")
    return 1


@workload
def scatter_gather(client: t.Any, nbytes: int) -> int:
    array = _array(nbytes)
    view = client[:]
    view.scatter("part", array, block=True)
    gathered = view.gather("part", block=True)
    if gathered.shape != array.shape or gathered[-1] != array[-1] or gathered[0] != array[0]:
        raise RuntimeError("gathered array differs")
    view.execute("del part", block=True)
    return 1


@workload
def push_pull(client: t.Any, nbytes: int) -> int:
    array = _array(nbytes)
    engine = client[client.ids[0]]
    engine.push({"pushed": array}, block=True)
    pulled = engine.pull("pushed", block=True)
    if pulled.shape != array.shape or pulled[-1] != array[-1]:
        raise RuntimeError("pulled array differs")
    engine.execute("del pushed", block=True)
    return 1


@workload
def push_pull_nested(client: t.Any, nbytes: int) -> int:
    """20 arrays of ``nbytes // 20`` in dicts nested two deep, pushed and pulled back."""
    part = nbytes // 20
    data = {f"g{i}": {"inner": [_array(part, 4 * i + j) for j in range(4)]} for i in range(5)}
    engine = client[client.ids[0]]
    engine.push({"nested": data}, block=True)
    pulled = engine.pull("nested", block=True)
    for key, group in data.items():
        for sent, got in zip(group["inner"], pulled[key]["inner"], strict=True):
            if got.shape != sent.shape or got[-1] != sent[-1]:
                raise RuntimeError("pulled nested array differs")
    engine.execute("del nested", block=True)
    return 1


# -- per-process CPU time ---------------------------------------------------------


def _role(proc: t.Any, controller_pids: set[int]) -> str:
    cmdline = " ".join(proc.cmdline())
    if "nanny" in cmdline:
        return "nannies"
    if "ipyparallel.engine" in cmdline or "ipengine" in cmdline or "kernelwire.ipp engine" in (
        cmdline
    ):
        return "engines"
    if proc.pid in controller_pids:
        return "hub"
    return "schedulers"  # forked by the controller: schedulers and the heartbeat monitor


def cpu_times() -> dict[str, float]:
    """CPU seconds (user + system) so far of this client and each role of its cluster."""
    import psutil

    me = psutil.Process()
    totals = {"client": sum(me.cpu_times()[:2])}
    children = me.children(recursive=True)
    controller_pids = {
        p.pid for p in children if p.ppid() == me.pid and "controller" in " ".join(p.cmdline())
    }
    for proc in children:
        try:
            with proc.oneshot():
                role = _role(proc, controller_pids)
                times = proc.cpu_times()
        except psutil.Error:
            continue  # exited meanwhile
        totals[role] = totals.get(role, 0.0) + times.user + times.system
    return totals


# -- the driver ---------------------------------------------------------------------


def start_cluster(
    contender: str, engines: int, ipython_dir: str, controller_args: list[str]
) -> tuple[t.Any, t.Any]:
    os.environ["IPYTHONDIR"] = ipython_dir
    import kernelwire.ipp

    on = contender == "kernelwire"
    cluster = kernelwire.ipp.Cluster(
        n=engines,
        controller_args=controller_args,
        kernelwire_controller=on,
        kernelwire_engines=on,
        kernelwire_client=on,
    )
    client = cluster.start_and_connect_sync()
    client.wait_for_engines(engines, timeout=120)
    return cluster, client


def describe(client: t.Any) -> dict[str, t.Any]:
    """What actually runs in this client: the Session class, its core and I/O, the serializer."""
    import ipyparallel.serialize as ipp_serialize

    session = type(client.session)
    info = {"session": f"{session.__module__}.{session.__qualname__}",
            "serialize_object": ipp_serialize.serialize_object.__module__}
    if hasattr(session, "implementations"):  # kernelwire's: the core and I/O modules it runs
        info.update(session.implementations())
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("contender", choices=["kernelwire", "jupyter_client"])
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument(
        "--controller-args", default="", help="ipcontroller options, e.g. '--scheme=pure --nodb'"
    )
    options = parser.parse_args(argv)
    out = sys.stdout
    sys.stdout = sys.stderr  # ipyparallel's own prints must not mix with the replies
    with tempfile.TemporaryDirectory(prefix="kernelwire-bench-ipp-") as ipython_dir:
        cluster, client = start_cluster(
            options.contender, options.engines, ipython_dir, shlex.split(options.controller_args)
        )
        try:
            for name, func in WORKLOADS.items():  # imports, connections, caches: not timed
                func(client, 50 if name == "tiny-tasks" else WARM_UP_BYTES)
            print(json.dumps({"ready": describe(client)}), file=out, flush=True)
            for line in sys.stdin:
                request = json.loads(line)
                try:
                    func = WORKLOADS[request["workload"]]
                    before = cpu_times()
                    start = time.perf_counter()
                    count = sum(
                        func(client, int(request["size"]))
                        for _ in range(int(request.get("repeat", 1)))
                    )
                    seconds = time.perf_counter() - start
                    after = cpu_times()
                    cpu = {k: after[k] - before.get(k, 0.0) for k in after}
                    reply = {"count": count, "seconds": seconds, "cpu": cpu}
                except Exception as e:  # reported to the runner as a failed sample
                    reply = {"error": f"{type(e).__name__}: {e}"}
                print(json.dumps(reply), file=out, flush=True)
        finally:
            client.close()
            cluster.stop_cluster_sync()


if __name__ == "__main__":
    main()
