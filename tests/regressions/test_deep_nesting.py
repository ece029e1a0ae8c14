"""Deeply nested headers: RecursionError exactly where jupyter_client raises it.

Found while probing the band between "parses fine" and "too deep" (nesting
100-1000, under orjson's 1024 limit): jupyter_client's extract_dates spends
one Python frame per dict level and two per list level (its list
comprehension) on Python < 3.12, so it rejects lists half as deep as dicts.
The pure core used a dict comprehension (two frames per dict level) and
rejected dicts jupyter_client accepts; fixed by looping as jupyter_client
does.  The compiled core counted every level alike against a fixed limit;
it now hands anything nested deeper than a small bound to jupyter_client's
own extract_dates.
"""

from __future__ import annotations

import pytest
from jupyter_client import jsonutil
from jupyter_client import session as jc_session
from regressions.hostile_oracle import Case, check, jc_session_class, make_session


def nested(kind: str, depth: int) -> str:
    if kind == "dict":
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("kind", ["dict", "list"])
@pytest.mark.parametrize("at", [1, 2], ids=["header", "parent_header"])
def test_nesting_verdict_matches_jupyter_client(monkeypatch, impl, Session_, kind, at):
    # importing ipyparallel (other tests do) swaps in a no-op: put the original back
    monkeypatch.setattr(jc_session, "extract_dates", jsonutil.extract_dates)
    ours, theirs = make_session(Session_, 0), make_session(jc_session_class(), 0)
    verdicts = set()
    for depth in range(100, 1001, 50):
        frames = ours.serialize(ours.msg("x"))
        prefix = '{"msg_id": "a", "msg_type": "b", "a": ' if at == 1 else '{"a": '
        frames[1 + at] = (prefix + nested(kind, depth) + "}").encode()
        verdicts.add(check(Case(frames=frames, resign=True), ours, theirs)[0])
    assert verdicts == {"ok", "error"}  # the band crosses the limit
