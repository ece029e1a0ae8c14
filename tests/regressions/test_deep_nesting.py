"""Deeply nested headers: RecursionError where jupyter_client raises it.

Found while probing the band between "parses fine" and "too deep" (nesting
100-1000, under orjson's 1024 limit): jupyter_client's extract_dates spends
one Python frame per dict level, and per list level two on Python < 3.12 (its
list comprehension is a function call there) but one from 3.12 on (PEP 709
inlines comprehensions).  The pure core used a dict comprehension (two frames
per dict level) and rejected dicts jupyter_client accepts; fixed by looping as
jupyter_client does.  The compiled core counted every level alike against a
fixed limit; it now hands anything nested deeper than a small bound to
jupyter_client's own extract_dates.

So the deepest nesting accepted depends on the Python version and on how deep
the caller's stack already is (pytest's own depth varies with its version and
plugins): it is measured live, for both Sessions from the same call site.
Their call chains into extract_dates differ by a few frames (kernelwire's
Session calls into its core), so the limits may differ by a few levels, never
by a factor; nesting clearly inside or beyond the limit gets jupyter_client's
verdict exactly.
"""

from __future__ import annotations

import typing as t

import pytest
from jupyter_client import jsonutil
from jupyter_client import session as jc_session
from regressions.hostile_oracle import Case, check, jc_session_class, make_session

# levels the two limits may differ by: a few frames of call chain, not a factor
TOLERANCE = 5
# orjson refuses a header nesting 1024 levels; below this only recursion can fail
DEEPEST = 1020


def nested(kind: str, depth: int) -> str:
    if kind == "dict":
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth + "1" + "]" * depth


def nested_frames(session: t.Any, kind: str, at: int, depth: int) -> list[bytes]:
    """A message whose header (at=1) or parent header (at=2) nests depth levels, signed."""
    frames = session.serialize(session.msg("x"))
    prefix = '{"msg_id": "a", "msg_type": "b", "a": ' if at == 1 else '{"a": '
    frames[1 + at] = (prefix + nested(kind, depth) + "}").encode()
    frames[1] = session.sign(frames[2:6])
    return frames


def deepest_accepted(session: t.Any, kind: str, at: int) -> int:
    """Binary search for the deepest nesting the session deserializes."""
    lo, hi = 0, DEEPEST
    while lo < hi:
        depth = (lo + hi + 1) // 2
        session.digest_history.clear()
        _, msg_list = session.feed_identities(nested_frames(session, kind, at, depth))
        try:
            session.deserialize(msg_list)
        except RecursionError:
            hi = depth - 1
        else:
            lo = depth
    return lo


@pytest.mark.parametrize("kind", ["dict", "list"])
@pytest.mark.parametrize("at", [1, 2], ids=["header", "parent_header"])
def test_nesting_limit_matches_jupyter_client(monkeypatch, impl, Session_, kind, at):
    # importing ipyparallel (other tests do) swaps in a no-op: put the original back
    monkeypatch.setattr(jc_session, "extract_dates", jsonutil.extract_dates)
    ours, theirs = make_session(Session_, 0), make_session(jc_session_class(), 0)
    their_limit = deepest_accepted(theirs, kind, at)
    our_limit = deepest_accepted(ours, kind, at)
    # recursion, not orjson, sets jupyter_client's limit, inside the probed band
    assert 100 < their_limit <= DEEPEST - 2 * TOLERANCE
    assert abs(our_limit - their_limit) <= TOLERANCE, (our_limit, their_limit)

    inside, beyond = their_limit - 2 * TOLERANCE, their_limit + 2 * TOLERANCE
    frames = nested_frames(ours, kind, at, inside)
    assert check(Case(frames=frames, resign=True), ours, theirs)[0] == "ok"
    frames = nested_frames(ours, kind, at, beyond)
    verdict, error = check(Case(frames=frames, resign=True), ours, theirs)
    assert verdict == "error" and isinstance(error, RecursionError), error
