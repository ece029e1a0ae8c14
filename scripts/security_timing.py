"""Timing measurements behind two security properties (never unit-test assertions).

    python scripts/security_timing.py [--reps 200000] [--pure]

1. Signature comparison: the time to reject a forged signature must not
   depend on how many leading characters it gets right.  Forgeries that
   differ from the true signature at the first, the middle and the last
   hex digit are verified (peek mode, so nothing is recorded) in
   interleaved rounds; the medians and a Welch t statistic between
   "first" and "last" are printed.  A leaking comparison shows up as a
   difference growing with the position; the noise floor here is tens of
   nanoseconds, so this is a sanity check, not a proof (the proof is the
   code: tests/test_security.py checks which comparison runs).
2. Replay-history culling: the cost per received message of keeping the
   history bounded, at history sizes 2**10 and 2**16, for kernelwire and for
   jupyter_client (which sorts the whole history on every cull).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from jupyter_client import session as jc_session

KEY = b"timing-key"


def session_class(pure: bool):
    from kernelwire.session import Session

    return Session.pinned(core="pure") if pure else Session


def forged(signature: bytes, at: int) -> bytes:
    s = bytearray(signature)
    s[at] = ord("0") if s[at] != ord("0") else ord("1")
    return bytes(s)


def time_rejections(session, frames: list, reps: int, rounds: int = 20) -> list[float]:
    """ns per rejected verification, one sample per round."""
    deserialize = session.deserialize
    out = []
    per_round = max(1, reps // rounds)
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(per_round):
            try:
                deserialize(frames, content=False)
            except ValueError:
                pass
        out.append((time.perf_counter_ns() - t0) / per_round)
    return out


def welch_t(a: list[float], b: list[float]) -> float:
    va, vb = statistics.variance(a), statistics.variance(b)
    return (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va / len(a) + vb / len(b) or 1e-12)


def comparison_timing(Session, reps: int) -> None:
    session = Session(key=KEY)
    frames = session.serialize(session.msg("execute_request", content={"code": "x"}))[1:]
    sig = frames[0]
    variants = {
        "first": forged(sig, 0),
        "middle": forged(sig, len(sig) // 2),
        "last": forged(sig, len(sig) - 1),
        "all": b"0" * len(sig),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(5):  # interleave, so drift hits every variant alike
        for name, s in variants.items():
            samples[name] += time_rejections(session, [s] + frames[1:], reps // 5, rounds=8)
    fast = getattr(session._kw, "compiled_hmac", False)
    path = "compiled HMAC + kw_ct_equal" if fast else "hmac.compare_digest"
    print(f"signature comparison ({path}):")
    for name, values in samples.items():
        print(f"  wrong at {name:>6}: median {statistics.median(values):8.1f} ns/verify")
    diff = statistics.median(samples["last"]) - statistics.median(samples["first"])
    t = welch_t(samples["last"], samples["first"])
    print(f"  last - first: {diff:+.1f} ns (Welch t = {t:+.2f}; |t| < ~3 is noise)")


def culling_cost(make, size: int, n: int) -> tuple[float, float]:
    """(ns per message with culling, ns per message without) at history ``size``."""
    session = make()
    session.digest_history_size = size
    for i in range(size):  # full history
        session._add_digest(b"%064x" % i)
    digests = [b"%064x" % (size + i) for i in range(n)]
    t0 = time.perf_counter_ns()
    for d in digests:
        session._add_digest(d)
    culled = (time.perf_counter_ns() - t0) / n
    assert len(session.digest_history) <= size
    session = make()
    session.digest_history_size = 10 * (size + n)  # never culls: the plain add
    for i in range(size):
        session._add_digest(b"%064x" % i)
    t0 = time.perf_counter_ns()
    for d in digests:
        session._add_digest(d)
    plain = (time.perf_counter_ns() - t0) / n
    return culled, plain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=200_000)
    parser.add_argument("--pure", action="store_true")
    args = parser.parse_args()
    Session = session_class(args.pure)
    print(f"core: {Session.implementations()['core']}")
    comparison_timing(Session, args.reps)

    print("replay-history culling, per received message (amortised):")
    for name, make in (
        ("kernelwire", lambda: Session(key=KEY)),
        ("jupyter_client", lambda: jc_session.Session(key=KEY)),
    ):
        for exp in (10, 16):
            size = 2**exp
            culled, plain = culling_cost(make, size, n=max(20 * size, 200_000))
            print(
                f"  {name:>14} history 2^{exp}: {culled:7.1f} ns/msg with culling, "
                f"{plain:7.1f} without -> culling {culled - plain:+7.1f} ns/msg"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
