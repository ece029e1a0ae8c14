"""Micro benchmarks of one Session operation at a time: ``pytest bench/ --benchmark-only``.

Every benchmark runs for each contender: kernelwire on the compiled core and
I/O and on the pure core and I/O (``Session.pinned``), and jupyter_client
with its orjson and json packers.  The compiled contender is skipped, with
the reason, when the extension is not built.  Sessions sign with HMAC-SHA256, as a kernel does.
"""

from __future__ import annotations

import typing as t

import pytest

from kernelwire.bench.contenders import availability, make_session
from kernelwire.bench.payloads import EXECUTE_REQUEST

CONTENDERS = ["kernelwire", "kernelwire-pure", "jupyter_client", "jupyter_client-json"]


@pytest.fixture(params=CONTENDERS)
def contender(request) -> str:
    reason = availability()[0].get(request.param)
    if reason:
        pytest.skip(f"{request.param}: {reason}")
    return request.param


@pytest.fixture
def session(contender) -> t.Any:
    """A signing Session; replay protection off so the same frames deserialize repeatedly."""
    s = make_session(contender)
    s.digest_history_size = 0  # jupyter_client and kernelwire then never record digests
    return s


@pytest.fixture
def reply_frames(session) -> list:
    """[signature, header, parent_header, metadata, content] of an execute_reply."""
    request = session.msg("execute_request", EXECUTE_REQUEST)
    reply = session.msg("execute_reply", {"status": "ok", "execution_count": 1}, parent=request)
    return session.serialize(reply)[1:]
