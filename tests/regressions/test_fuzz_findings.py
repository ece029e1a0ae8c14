"""Every input the fuzzer (fuzz/run.sh) ever stopped on, replayed on both cores.

Each file in regressions/corpus/ is a hostile_oracle.Case; its name says what
it found.  Add a finding by copying fuzz/work/crash-<hash> here under a name
that describes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq
from jupyter_client import jsonutil
from jupyter_client import session as jc_session
from regressions.hostile_oracle import Case, check, jc_session_class, make_session, socket_pair

CORPUS = sorted((Path(__file__).parent / "corpus").iterdir())


@pytest.fixture(autouse=True)
def real_extract_dates(monkeypatch):
    """Importing ipyparallel (other tests do) swaps in a no-op: test the real thing."""
    monkeypatch.setattr(jc_session, "extract_dates", jsonutil.extract_dates)


@pytest.fixture(scope="module")
def pair():
    ctx = zmq.Context()
    sockets = socket_pair(ctx, "fuzz-findings")
    yield sockets
    for s in sockets:
        s.close(linger=0)
    ctx.term()


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_finding(Session_, pair, path):
    case = Case.decode(path.read_bytes())
    check(
        case,
        make_session(Session_, case.scheme),
        make_session(jc_session_class(), case.scheme),
        pair,
    )
    # and the same frames straight into deserialize, without the socket
    case.via_socket = False
    check(case, make_session(Session_, case.scheme), make_session(jc_session_class(), case.scheme))


def test_corpus_is_not_empty():
    assert CORPUS
