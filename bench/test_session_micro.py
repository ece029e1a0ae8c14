"""One Session operation per benchmark, for every contender (see conftest.py)."""

from __future__ import annotations

import pytest
import zmq
from jupyter_client import jsonutil
from jupyter_client import session as jc_session

from kernelwire.bench.payloads import EXECUTE_REQUEST


@pytest.mark.benchmark(group="msg")
def test_msg(benchmark, session):
    msg = benchmark(session.msg, "execute_request", EXECUTE_REQUEST)
    assert msg["content"] == EXECUTE_REQUEST


@pytest.mark.benchmark(group="serialize")
def test_serialize(benchmark, session):
    msg = session.msg("execute_request", EXECUTE_REQUEST)
    frames = benchmark(session.serialize, msg)
    assert len(frames) == 6 and len(frames[1]) == 64


@pytest.mark.benchmark(group="deserialize (dates parsed)")
def test_deserialize(benchmark, session, reply_frames, monkeypatch):
    # importing ipyparallel (test_serialize_object) disables date parsing: restore it
    monkeypatch.setattr(jc_session, "extract_dates", jsonutil.extract_dates)
    msg = benchmark(session.deserialize, reply_frames)
    assert msg["parent_header"]["msg_type"] == "execute_request"
    assert msg["header"]["date"].tzinfo is not None


@pytest.mark.benchmark(group="deserialize (no dates, as under ipyparallel)")
def test_deserialize_without_dates(benchmark, session, reply_frames, monkeypatch):
    # ipyparallel's client and apps patch this module attribute at import
    monkeypatch.setattr(jc_session, "extract_dates", lambda obj: obj)
    msg = benchmark(session.deserialize, reply_frames)
    assert isinstance(msg["header"]["date"], str)


@pytest.mark.benchmark(group="sign")
def test_sign(benchmark, session, reply_frames):
    signature = benchmark(session.sign, reply_frames[1:5])
    assert signature == reply_frames[0]


@pytest.mark.benchmark(group="feed_identities")
@pytest.mark.parametrize("copy", [True, False], ids=["bytes", "frames"])
def test_feed_identities(benchmark, session, reply_frames, copy):
    frames = [b"routing-id-0001", b"<IDS|MSG>", *reply_frames]
    if not copy:
        frames = [zmq.Frame(f) for f in frames]
    idents, rest = benchmark(session.feed_identities, frames, copy)
    assert idents == [b"routing-id-0001"] and len(rest) == 5
