"""Shared memory against sockets: ``python -m kernelwire.bench.shared_memory``.

Two parts, each one run with its contenders side by side, rounds interleaved:

``session``: one big buffer from one process to another, Session to Session.
  The sender sends a ``data_request`` holding it and waits for the
  receiver's small reply, which comes once the receiver holds the buffer.
  Contenders: kernelwire frames over tcp and over ipc; shared memory, the
  buffer copied at send (``shared_memory_threshold``); shared memory with a
  ``kernelwire.shared`` array (no copy); the C floor (libzmq alone, one
  way); and two in-process floors: memcpy into warm memory, and the copy
  into fresh shared memory that shared-memory sends pay.

``cluster``: IPython Parallel with 2 local engines, per workload (push of a
  big array to all engines, apply with it as argument on all engines,
  scatter + gather), for stock ipyparallel, kernelwire with frames and
  kernelwire with ``Cluster(shared_memory=True)``.  Beside the wall time:
  the peak RSS of every process of the cluster, client included (VmHWM,
  reset before each workload), and its RssShmem part (shared pages, counted
  again in each process that maps them).

Results: a table on stdout, ``--json PATH`` for the raw samples.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import typing as t

SIZES = {"1MB": 1 << 20, "64MB": 64 << 20, "1GB": 1 << 30}


# -- session to session ----------------------------------------------------------------


def _receiver(endpoint: str, threshold: int) -> None:
    import zmq

    from kernelwire import Session

    session = Session(key=b"bench", shared_memory_threshold=threshold)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(endpoint)
    sock.send(b"ready")
    while True:
        _, msg = session.recv(sock, mode=0, copy=False)
        if msg["msg_type"] == "stop_request":
            break
        held = msg["buffers"][0]  # the receiver holds it, mapped or received
        session.send(sock, "data_reply", {"nbytes": held.nbytes}, parent=msg)
        del held, msg


def session_part(sizes: list[int], rounds: int, floor_ok: bool) -> list[dict]:
    import numpy as np
    import zmq

    from kernelwire import Session, _shm, shared

    samples = []
    ctx = zmq.Context.instance()

    def peer(transport: str, threshold: int) -> tuple[t.Any, subprocess.Popen]:
        sock = ctx.socket(zmq.ROUTER)
        if transport == "ipc":
            endpoint = f"ipc:///tmp/kernelwire-bench-{os.getpid()}"
            sock.bind(endpoint)
        else:
            endpoint = f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kernelwire.bench.shared_memory",
                "receiver",
                endpoint,
                str(threshold),
            ]
        )
        ident, _ = sock.recv_multipart()
        return (sock, ident), proc

    contenders = {
        "kernelwire frames, tcp": ("tcp", 0, False),
        "kernelwire frames, ipc": ("ipc", 0, False),
        "kernelwire shared memory (copy at send)": ("tcp", 1 << 20, False),
        "kernelwire shared memory (kernelwire.shared array)": ("tcp", 1 << 20, True),
    }
    peers = {name: peer(transport, thr) for name, (transport, thr, _) in contenders.items()}
    senders = {
        name: Session(key=b"bench", shared_memory_threshold=thr)
        for name, (_, thr, _) in contenders.items()
    }
    for s in senders.values():
        if s.shared_memory is not None:
            s.shared_memory.grace = 0.0
    try:
        for size in sizes:
            plain = np.ones(size, np.uint8)
            in_shm = shared.asarray(plain)
            warm = np.empty_like(plain)
            warm[:] = plain
            for rnd in range(rounds):
                order = list(contenders)
                order = order[rnd % len(order) :] + order[: rnd % len(order)]
                for name in order:
                    (sock, ident), _ = peers[name]
                    buf = in_shm if contenders[name][2] else plain
                    t0 = time.perf_counter()
                    senders[name].send(sock, "data_request", {}, buffers=[buf], ident=[ident])
                    senders[name].recv(sock, mode=0)
                    samples.append(_sample("session", name, size, time.perf_counter() - t0))
                t0 = time.perf_counter()
                warm[:] = plain
                samples.append(
                    _sample("session", "floor: memcpy, warm memory", size, time.perf_counter() - t0)
                )
                t0 = time.perf_counter()
                name = _shm.create_segment(memoryview(plain))
                samples.append(
                    _sample(
                        "session",
                        "floor: copy into fresh shared memory",
                        size,
                        time.perf_counter() - t0,
                    )
                )
                _shm.unlink(name)
                if floor_ok:
                    samples.append(
                        _sample("session", "C floor (libzmq, tcp, one way)", size, _c_floor(size))
                    )
                time.sleep(0.1)  # let released segments go
            del in_shm
    finally:
        for name, ((sock, ident), proc) in peers.items():
            senders[name].send(sock, "stop_request", {}, ident=[ident])
            proc.wait(timeout=60)
            sock.close(linger=0)
        for s in senders.values():
            if s.shared_memory is not None:
                s.shared_memory.release_all()
    return samples


def _c_floor(size: int) -> float:
    from .floor import build

    floor = build()
    pull = subprocess.Popen(
        floor.command("pull", "tcp://127.0.0.1:*", 2, []), stdout=subprocess.PIPE, text=True
    )
    endpoint = json.loads(pull.stdout.readline())["endpoint"]
    subprocess.run(
        floor.command("push", endpoint, 2, [size]), check=True, stdout=subprocess.DEVNULL
    )
    seconds = json.loads(pull.stdout.readline())["seconds"]
    pull.wait(timeout=60)
    pull.stdout.close()
    return seconds / 2


def _sample(part: str, contender: str, size: int, seconds: float, **extra: t.Any) -> dict:
    return {"part": part, "contender": contender, "size": size, "seconds": seconds, **extra}


# -- the cluster ---------------------------------------------------------------------------

CLUSTER_CONTENDERS = ("stock ipyparallel", "kernelwire frames", "kernelwire shared memory")


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _status(pid: int) -> dict[str, t.Any]:
    out: dict[str, t.Any] = {}
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "RssShmem", "VmRSS"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        return {}
    role = (
        "client"
        if pid == os.getpid()
        else (
            "engine"
            if "engine" in cmd
            else "nanny"
            if "nanny" in cmd
            else "controller"
            if "controller" in cmd
            else "other"
        )
    )
    out["role"] = role
    return out


def _reset_peaks(pids: list[int]) -> None:
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass


def cluster_driver(contender: str, size: int) -> None:
    """One contender's cluster, every workload once; prints one JSON line per workload."""
    import numpy as np

    if contender == "stock ipyparallel":
        import ipyparallel

        cluster = ipyparallel.Cluster(n=2, log_level=40)
    else:
        from kernelwire import ipp

        cluster = ipp.Cluster(
            n=2, log_level=40, shared_memory=contender == "kernelwire shared memory"
        )
    client = cluster.start_and_connect_sync()
    client.wait_for_engines(2, timeout=120)
    view = client[:]
    data = np.random.default_rng(0).random(size // 8)
    view.apply_sync(int)

    def push() -> None:
        view.push({"a": data}, block=True)

    def apply() -> None:
        assert view.apply_sync(lambda x: float(x[::4096].sum()), data)

    def scatter_gather() -> None:
        view.scatter("part", data, block=True)
        assert len(view.gather("part", block=True)) == len(data)

    try:
        for workload, run in (
            ("push to all", push),
            ("apply, argument on all", apply),
            ("scatter + gather", scatter_gather),
        ):
            pids = _tree(os.getpid())
            view.execute("a = part = None", block=True)
            time.sleep(3)  # released segments go; memory settles
            _reset_peaks(pids)
            t0 = time.perf_counter()
            run()
            seconds = time.perf_counter() - t0
            processes = [p for p in (_status(pid) for pid in _tree(os.getpid())) if p]
            print(
                json.dumps(
                    _sample(
                        "cluster", contender, size, seconds, workload=workload, processes=processes
                    )
                ),
                flush=True,
            )
    finally:
        client.close()
        cluster.stop_cluster_sync()


def cluster_part(size: int, rounds: int) -> list[dict]:
    samples = []
    for rnd in range(rounds):
        order = list(CLUSTER_CONTENDERS)
        order = order[rnd % 3 :] + order[: rnd % 3]
        for contender in order:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kernelwire.bench.shared_memory",
                    "cluster-driver",
                    contender,
                    str(size),
                ],
                capture_output=True,
                text=True,
                timeout=1800,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise RuntimeError(f"{contender}: {proc.stderr[-2000:]}")
            samples.extend(json.loads(ln) for ln in lines)
    return samples


# -- report ----------------------------------------------------------------------------------


def report(samples: list[dict]) -> str:
    lines = []
    session = [s for s in samples if s["part"] == "session"]
    for size in sorted({s["size"] for s in session}):
        rows = [s for s in session if s["size"] == size]
        by: dict[str, list[float]] = {}
        for s in rows:
            by.setdefault(s["contender"], []).append(s["seconds"])
        floor = statistics.median(by.get("C floor (libzmq, tcp, one way)", [float("nan")]))
        most = max(map(len, by.values()))
        lines.append(f"\nSession to Session, {size / 2**20:,.0f} MiB (median of {most})")
        lines.append(f"{'contender':58} {'ms':>9} {'GB/s':>7} {'x C floor':>9}")
        for name, values in by.items():
            med = statistics.median(values)
            lines.append(f"{name:58} {med * 1e3:9.1f} {size / med / 1e9:7.2f} {floor / med:9.2f}")
    cluster = [s for s in samples if s["part"] == "cluster"]
    if cluster:
        size = cluster[0]["size"]
        lines.append(f"\nIPython Parallel, 2 local engines, {size / 2**20:,.0f} MiB array")
        lines.append(
            f"{'workload':24} {'contender':26} {'s':>7} {'x stock':>7} "
            f"{'peak RSS per process (MiB)':>30} {'sum':>7} {'shmem':>7}"
        )
        for workload in dict.fromkeys(s["workload"] for s in cluster):
            stock = statistics.median(
                s["seconds"]
                for s in cluster
                if s["workload"] == workload and s["contender"] == CLUSTER_CONTENDERS[0]
            )
            for contender in CLUSTER_CONTENDERS:
                runs = [
                    s for s in cluster if s["workload"] == workload and s["contender"] == contender
                ]
                if not runs:
                    continue
                med = statistics.median(s["seconds"] for s in runs)
                last = runs[-1]["processes"]
                peaks = sorted(
                    ((p["role"], p.get("VmHWM", 0) >> 20) for p in last),
                    key=lambda rp: (rp[0], -rp[1]),
                )
                shown = " ".join(f"{r[0][:3]}:{r[1]}" for r in peaks if r[1] > 60)
                total = sum(p.get("VmHWM", 0) for p in last) >> 20
                shmem = sum(p.get("RssShmem", 0) for p in last) >> 20
                lines.append(
                    f"{workload:24} {contender:26} {med:7.2f} {stock / med:7.2f} "
                    f"{shown:>30} {total:7} {shmem:7}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "receiver":
        return _receiver(argv[1], int(argv[2]))
    if argv and argv[0] == "cluster-driver":
        return cluster_driver(argv[1], int(argv[2]))
    parser = argparse.ArgumentParser(prog="python -m kernelwire.bench.shared_memory")
    parser.add_argument("--sizes", default="64MB,1GB", help="Session-to-Session sizes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cluster-size", default="1GB", help="the cluster workloads' array")
    parser.add_argument("--cluster-rounds", type=int, default=1)
    parser.add_argument("--parts", default="session,cluster")
    parser.add_argument("--json", help="write the raw samples here")
    options = parser.parse_args(argv)
    from kernelwire import _shm

    if not _shm.supported():
        sys.exit("shared memory needs Linux")
    try:
        from .floor import build

        build()
        floor_ok = True
    except Exception as e:  # the floor is optional: say why it is missing
        print(f"C floor not available: {e}", file=sys.stderr)
        floor_ok = False
    parts = options.parts.split(",")
    samples: list[dict] = []
    if "session" in parts:
        sizes = [SIZES[s] for s in options.sizes.split(",")]
        samples += session_part(sizes, options.rounds, floor_ok)
    if "cluster" in parts:
        samples += cluster_part(SIZES[options.cluster_size], options.cluster_rounds)
    print(report(samples))
    if options.json:
        with open(options.json, "w") as f:
            json.dump({"argv": argv, "samples": samples}, f, indent=1)


if __name__ == "__main__":
    main()
