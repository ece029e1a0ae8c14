"""atheris harness: hostile frame lists into kernelwire's compiled receive path.

Each input is a ``Case`` (tests/regressions/hostile_oracle.py: a flag byte,
then length-prefixed frames) and goes through feed_identities, deserialize
and, for some flags, Session.recv over an inproc socket pair, on kernelwire
and on jupyter_client side by side.  A crash, a sanitizer report, an
exception jupyter_client would not raise, or any other disagreement stops
the run and leaves the input as a crash-* file.

Run it through fuzz/run.sh, which builds the extensions with libFuzzer
coverage and ASan/UBSan first; running this file directly fuzzes whatever
kernelwire is importable (without native coverage feedback).
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

with atheris.instrument_imports(include=["kernelwire", "regressions"]):
    import zmq
    from regressions.hostile_oracle import (
        SCHEMES,
        Case,
        check,
        jc_session_class,
        make_session,
        socket_pair,
    )

    import kernelwire

if kernelwire.implementation != "cython" and os.environ.get("KERNELWIRE_FUZZ_PURE") != "1":
    sys.exit("fuzz_session: no compiled core (KERNELWIRE_FUZZ_PURE=1 fuzzes the pure one)")

JCSession = jc_session_class()
SESSIONS = [
    (make_session(kernelwire.Session, i), make_session(JCSession, i)) for i in range(len(SCHEMES))
]
CONTEXT = zmq.Context()
PAIR = socket_pair(CONTEXT, "kernelwire-fuzz")


def test_one_input(data: bytes) -> None:
    case = Case.decode(data)
    ours, theirs = SESSIONS[case.scheme]
    check(case, ours, theirs, PAIR)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
