"""Measure the ways a Session can sign, side by side, in one run.

    python scripts/measure_signers.py [--rounds 7] [--python OTHER_PYTHON ...]

For every interpreter given (default: this one) and every round, a child
process measures each signer its kernelwire offers:

- ``compiled``: the compiled core's own HMAC (what a Session with a key uses);
- ``hashlib``: the compiled core signing through copies of the Session's
  ``hmac.HMAC`` object, jupyter_client's path;
- ``jupyter_client``: jupyter_client's Session itself, for scale.

Each signer gets: ``sign`` of a small message (ns), ``verify`` (the whole
``deserialize`` of that message, ns), ``sign`` of a 1 MB content frame (µs),
and end-to-end small messages per second over tcp between two Sessions in
one process.  Rounds interleave the interpreters, so a noisy moment hits
all of them.  Prints a table of medians (min-max); ``--json`` writes every
sample.  Pass an interpreter with another kernelwire build (``--python``) to
compare builds, e.g. a previous signer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

KEY = b"measure-signers-key-0123456789ab"


def _child() -> dict:
    import zmq
    from jupyter_client.session import Session as JCSession

    import kernelwire
    from kernelwire.session import Session

    compiled_cls = Session.pinned("cython", "cython")
    has_signer = hasattr(compiled_cls._core_module, "Signer")
    build = "EVP digest HMAC" if has_signer else "low-level SHA*_Init HMAC"

    def make(signer: str):
        if signer == "jupyter_client":
            return JCSession(key=KEY)
        s = compiled_cls(key=KEY)
        if signer == "hashlib":
            s._kw.set_auth(s.auth)  # no key given: the core signs with auth.copy()
            assert not s._kw.compiled_hmac
        else:
            assert s._kw.compiled_hmac
        return s

    def timed(fn, arg, n: int) -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn(arg)
        return (time.perf_counter_ns() - t0) / n

    def e2e(signer: str, n: int = 20000) -> float:
        ctx = zmq.Context()
        push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        port = push.bind_to_random_port("tcp://127.0.0.1")
        pull.connect(f"tcp://127.0.0.1:{port}")
        sender, receiver = make(signer), make(signer)
        sender.send(push, "warmup", {})
        receiver.recv(pull, mode=0)

        def send_all():
            for _ in range(n):
                sender.send(push, "execute_request", {"code": "1+1"})

        t0 = time.perf_counter()
        thread = threading.Thread(target=send_all)
        thread.start()
        for _ in range(n):
            receiver.recv(pull, mode=0)
        thread.join()
        rate = n / (time.perf_counter() - t0)
        push.close(0)
        pull.close(0)
        ctx.term()
        return rate

    out: dict = {"build": build, "kernelwire": kernelwire.__file__}
    for signer in ("compiled", "hashlib", "jupyter_client"):
        s = make(signer)
        small = s.serialize(s.msg("execute_request", {"code": "1+1"}))
        parts, wire = small[2:6], small[1:]
        big = s.serialize(s.msg("execute_request", {"code": "x" * (1 << 20)}))[2:6]
        s.digest_history_size = 0  # verify the same message again and again
        if signer == "hashlib":
            s._kw.set_auth(s.auth)
        out[signer] = {
            "sign small (ns)": timed(s.sign, parts, 20000),
            "verify small (ns)": timed(s.deserialize, wire, 20000),
            "sign 1 MB (us)": timed(s.sign, big, 200) / 1000,
            "tcp small (msg/s)": e2e(signer),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--python", action="append", default=[], help="another interpreter")
    parser.add_argument("--json", help="write every sample here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child()))
        return
    pythons = [sys.executable, *args.python]
    samples: list[dict] = []
    for r in range(args.rounds):
        for py in pythons:
            result = subprocess.run(
                [py, __file__, "--child"], check=True, capture_output=True, text=True
            )
            sample = json.loads(result.stdout)
            sample["round"] = r
            sample["python"] = py
            samples.append(sample)
            print(f"round {r + 1}/{args.rounds}: {sample['build']} done", file=sys.stderr)
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for sample in samples:
        for signer in ("compiled", "hashlib", "jupyter_client"):
            label = sample["build"] if signer == "compiled" else signer
            if signer != "compiled" and sample["python"] != pythons[0]:
                continue  # one hashlib / jupyter_client row: this interpreter's
            row = rows.setdefault((label, signer), {})
            for metric, value in sample[signer].items():
                row.setdefault(metric, []).append(value)
    metrics = list(next(iter(rows.values())))
    print(f"median (min-max) of {args.rounds} rounds")
    print("| signer | " + " | ".join(metrics) + " |")
    print("|---" * (len(metrics) + 1) + "|")
    for (label, _), row in rows.items():
        cells = [
            f"{statistics.median(v):,.1f} ({min(v):,.0f}-{max(v):,.0f})" for v in row.values()
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(samples, f, indent=1)


if __name__ == "__main__":
    main()
