"""Scenario: objects with nested arrays, serialized, sent, received and rebuilt over tcp.

The object is a dict of 100 arrays of 1 MiB each, nested two levels deep
(10 groups of 10), as IPython Parallel's push/apply would send it. Each
sample runs in a fresh process: serialize_object, Session.send on a PUSH
socket, Session.recv(copy=False) on a PULL socket (tcp, 127.0.0.1),
deserialize_object, then a check of every array. The cases are the
serializers (kernelwire.serialize vs ipyparallel.serialize), the columns the
Session contenders; each sample also records the process's peak memory
growth over the object itself.

Standalone: ``python -m kernelwire.bench.serialize_object`` runs both
serializers on kernelwire's Session and prints time and peak memory.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import subprocess
import sys
import time
import typing as t

from .base import Bench, Case, Measurement, Scenario

if t.TYPE_CHECKING:
    from .contenders import Contender

SERIALIZERS = ("kernelwire.serialize", "ipyparallel.serialize")
GROUPS = ITEMS = 10
ARRAY_BYTES = 1 << 20
OBJECT_BYTES = GROUPS * ITEMS * ARRAY_BYTES
ROUNDS = 20


def _payload() -> dict:
    import numpy as np

    return {
        f"group{g}": {f"item{i}": np.full(ARRAY_BYTES // 8, g * ITEMS + i, dtype=np.float64)
                      for i in range(ITEMS)}
        for g in range(GROUPS)
    }


def _max_rss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_child(session_name: str, serializer: str, rounds: int) -> dict:
    """One sample, in this process: ``rounds`` end-to-end transfers of the object."""
    import zmq

    from .contenders import make_session

    if serializer == "ipyparallel.serialize":  # IPython Parallel's own, even if rebound here
        from kernelwire import _ipp_originals

        stock = _ipp_originals.serialize()
        serialize_object = stock["serialize_object"]
        deserialize_object = stock["deserialize_object"]
    else:
        module = importlib.import_module(serializer)
        serialize_object, deserialize_object = module.serialize_object, module.deserialize_object
    sender, receiver = make_session(session_name), make_session(session_name)
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    obj = _payload()
    baseline = _max_rss_bytes()
    times = []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            frames = serialize_object(obj)
            sender.send(push, "apply_request", {}, buffers=frames)
            del frames
            _, msg = receiver.recv(pull, mode=0, copy=False)
            out, _ = deserialize_object(msg["buffers"])
            times.append(time.perf_counter() - start)
            for g in range(GROUPS):  # every array arrived (checked outside the timing)
                for i in range(ITEMS):
                    arr = out[f"group{g}"][f"item{i}"]
                    if arr.nbytes != ARRAY_BYTES or arr[-1] != g * ITEMS + i:
                        raise AssertionError(f"group{g}/item{i} arrived damaged")
            del out, msg
    finally:
        push.close(linger=0)
        pull.close(linger=0)
        ctx.term()
    ran = getattr(type(sender), "implementations", None)  # kernelwire's: its core and I/O
    return {"seconds": times, "peak_growth_bytes": _max_rss_bytes() - baseline,
            "implementations": ran() if ran else None}


def run_sample(session_name: str, serializer: str, rounds: int) -> dict:
    """One sample in a fresh process, so each peak memory figure is its own."""
    done = subprocess.run(
        [sys.executable, "-m", "kernelwire.bench.serialize_object", "--child",
         session_name, serializer, str(rounds)],
        capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{serializer} on {session_name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class SerializeObject(Scenario):
    name = "serialize-object"
    title = "dict of 100 x 1 MiB arrays, nested 2 deep: serialize, send, recv, deserialize (tcp)"
    default = False
    kinds = ("session",)

    def cases(self, options: argparse.Namespace) -> list[Case]:
        return [Case(f"nested-100x1MiB/{s}", s, unit="ms", params={"serializer": s})
                for s in SERIALIZERS]

    def measure(self, bench: Bench, case: Case, contender: Contender) -> Measurement:
        rounds = bench.scaled(ROUNDS)
        sample = run_sample(contender.name, case.params["serializer"], rounds)
        return Measurement(
            count=rounds,
            seconds=sum(sample["seconds"]),
            bytes_per_op=OBJECT_BYTES,
            extra={"peak_growth_mb": sample["peak_growth_bytes"] / 1e6,
                   "implementations": sample["implementations"]},
        )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        session_name, serializer, rounds = argv[1], argv[2], int(argv[3])
        print(json.dumps(run_child(session_name, serializer, rounds)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="kernelwire", help="Session contender to send with")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    options = parser.parse_args(argv)
    print(f"{GROUPS * ITEMS} arrays x {ARRAY_BYTES >> 20} MiB, {options.rounds} rounds, "
          f"Session: {options.session}")
    print(f"{'serializer':24} {'median ms':>10} {'min ms':>8} {'GB/s':>6} {'peak growth MB':>15}")
    for serializer in SERIALIZERS:
        sample = run_sample(options.session, serializer, options.rounds)
        seconds = sorted(sample["seconds"])
        median = seconds[len(seconds) // 2]
        print(f"{serializer:24} {median * 1e3:10.1f} {seconds[0] * 1e3:8.1f} "
              f"{OBJECT_BYTES / median / 1e9:6.2f} {sample['peak_growth_bytes'] / 1e6:15.0f}")


if __name__ == "__main__":
    main()
