"""Soak test: memory stays flat over a million messages and 10,000 zero-copy sends.

    python scripts/soak.py [--messages 1000000] [--loop 200000] [--buffers 10000] [--pure]

Three runs through one Session each, RSS sampled as they go:

1. serialize + feed_identities + deserialize of small signed messages;
2. send/recv over an inproc PAIR (the compiled zero-copy I/O when present);
3. zero-copy buffer sends (buffers at the copy threshold), received and
   dropped, then a check that every buffer came back to its own reference
   count (released, and released only once) and the I/O module's counters.

The replay history keeps its default size (65,536 entries): it fills during
the first 65,536 messages, so RSS is compared between the end of a warm-up
that covers it and the end of the run.  Prints one line per run and exits 1
if a run grew more than --limit MiB after its warm-up.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import time
import weakref

import zmq

MB = 1 << 20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def session_class(pure: bool):
    from kernelwire.session import Session

    return Session.pinned(core="pure") if pure else Session


def run(name: str, step, n: int, warmup: int, samples: int = 10) -> float:
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    gc.collect()
    start = rss()
    marks = []
    for i in range(n):
        step(warmup + i)
        if (i + 1) % max(1, n // samples) == 0:
            marks.append((rss() - start) / MB)
    gc.collect()
    grown = (rss() - start) / MB
    elapsed = time.perf_counter() - t0
    trace = " ".join(f"{m:+.1f}" for m in marks)
    print(
        f"{name}: {warmup:,} warm-up + {n:,} in {elapsed:.1f} s; RSS after warm-up "
        f"{start / MB:.1f} MiB, growth {grown:+.2f} MiB (samples: {trace})",
        flush=True,
    )
    return grown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--loop", type=int, default=200_000)
    parser.add_argument("--buffers", type=int, default=10_000)
    parser.add_argument("--limit", type=float, default=8.0, help="MiB of growth allowed")
    parser.add_argument("--pure", action="store_true", help="the pure-Python core")
    args = parser.parse_args()

    import kernelwire

    Session = session_class(args.pure)
    ran = Session.implementations()
    # the I/O module this Session runs: its frame counters are checked below
    zmqio = importlib.import_module(
        "kernelwire._zmqio" if ran["io"] == "cython" else "kernelwire._pyzmqio"
    )
    print(f"core: {ran['core']}; zmq I/O: {ran['io']}; kernelwire {kernelwire.__version__}")
    key = b"soak-key"
    failures = []

    session = Session(key=key)
    content = {"code": "x = 1", "silent": False, "user_expressions": {}}

    def roundtrip(i):
        frames = session.serialize(session.msg("execute_request", content=content))
        _, rest = session.feed_identities(frames)
        session.deserialize(rest)

    warm = min(100_000, args.messages // 5)
    if run("serialize+deserialize", roundtrip, args.messages - warm, warm) > args.limit:
        failures.append("serialize+deserialize")

    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.sndhwm = b.rcvhwm = 0
    a.bind("inproc://soak")
    b.connect("inproc://soak")
    b.rcvtimeo = 10_000
    sender, receiver = Session(key=key), Session(key=key)

    def send_recv(i):
        sender.send(a, "status", content={"execution_state": "idle"}, ident=b"peer")
        receiver.recv(b, mode=0, copy=i % 2 == 0)

    warm = min(80_000, args.loop // 3)
    if run("send/recv inproc", send_recv, args.loop - warm, warm) > args.limit:
        failures.append("send/recv")

    class Buffer(bytearray):
        """weak-referenceable, so its release can be observed"""

    shared = Buffer(b"s" * sender.copy_threshold)
    baseline = sys.getrefcount(shared)
    refs = []
    before = zmqio.stats() if hasattr(zmqio, "stats") else None

    def zero_copy(i):
        own = Buffer(b"b" * sender.copy_threshold)
        if i % 100 == 0:
            refs.append(weakref.ref(own))
        sender.send(a, "data", content={"i": i}, buffers=[shared, own])
        receiver.recv(b, mode=0, copy=i % 2 == 0)

    warm = args.buffers // 10
    if run("zero-copy sends", zero_copy, args.buffers - warm, warm) > args.limit:
        failures.append("zero-copy")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        sys.getrefcount(shared) > baseline or any(r() is not None for r in refs)
    ):
        sender.send(None, "poke")
        gc.collect()
        time.sleep(0.01)
    extra = sys.getrefcount(shared) - baseline
    unreleased = sum(r() is not None for r in refs)
    line = (
        f"zero-copy buffers: shared buffer extra refs {extra}, "
        f"sampled buffers unreleased {unreleased}/{len(refs)}"
    )
    if before is not None:
        created, released = zmqio.stats()
        handed, back = created - before[0], released - before[1]
        line += f"; zmqio frames handed over {handed:,}, released {back:,}"
        if created - before[0] != released - before[1]:
            failures.append("zmqio counters")
    print(line)
    if extra != 0 or unreleased:
        failures.append("buffer release")
    a.close(0)
    b.close(0)
    ctx.term()
    print("FAIL: " + ", ".join(failures) if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
