"""Hostile frames into feed_identities, deserialize and recv, on both cores.

Every input goes to kernelwire and to jupyter_client side by side
(regressions/hostile_oracle.py): kernelwire must accept exactly what
jupyter_client accepts, return the same message, raise the same exception
type otherwise, keep the same replay history, and still work afterwards.
"""

from __future__ import annotations

import json

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_client import jsonutil
from jupyter_client import session as jc_session
from regressions.hostile_oracle import (
    DELIM,
    DOCUMENTED,
    SCHEMES,
    Case,
    check,
    jc_session_class,
    make_session,
    socket_pair,
    still_usable,
)

JCSession = jc_session_class()
HYPOTHESIS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def real_extract_dates(monkeypatch):
    """Importing ipyparallel (other tests do) swaps in a no-op: test the real thing."""
    monkeypatch.setattr(jc_session, "extract_dates", jsonutil.extract_dates)


@pytest.fixture
def sessions(Session_):
    """One (kernelwire, jupyter_client) pair per signature scheme."""
    return [(make_session(Session_, i), make_session(JCSession, i)) for i in range(len(SCHEMES))]


@pytest.fixture
def pair():
    ctx = zmq.Context()
    sockets = socket_pair(ctx, f"hostile-{id(ctx)}")
    yield sockets
    for s in sockets:
        s.close(linger=0)
    ctx.term()


def run(case: Case, sessions, pair=None):
    ours, theirs = sessions[case.scheme]
    return check(case, ours, theirs, pair)


# -- strategies ----------------------------------------------------------------

flags = st.fixed_dictionaries(
    {
        "copy": st.booleans(),
        "content": st.booleans(),
        "resign": st.booleans(),
        "scheme": st.integers(0, len(SCHEMES) - 1),
        "split": st.booleans(),
    }
)
small_frames = st.lists(
    st.one_of(st.binary(max_size=40), st.just(DELIM), st.just(b""), st.just(b"{}")), max_size=9
)


def _nested(depth: int, leaf: str = "1") -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


# replacements for one packed frame (header, parent, metadata or content)
bad_json = st.one_of(
    st.binary(max_size=30),  # anything, mostly invalid UTF-8 / JSON
    st.sampled_from(
        [
            b"",
            b"{",
            b"null",
            b"[]",
            b"42",
            b'"2024-05-17T12:30:05Z"',
            b"\xff\xfe{}",
            b'{"msg_id": "\xed\xa0\x80"}',  # a lone surrogate in UTF-8
            b'{"msg_id": 1, "msg_type": null}',
            b'{"msg_type": "x"}',
            b'{"msg_id": "a", "msg_type": "b", "date": "2024-13-45T99:99:99Z"}',
            b'{"msg_id": "a", "msg_type": "b", "date": "0000-01-01T00:00:00Z"}',
            b'{"msg_id": "a", "msg_type": "b", "date": "2024-05-17T12:30:05.1234567Z"}',
            b'{"msg_id": "a", "msg_type": "b", "date": "\xd9\xa2024-05-17T12:30:05Z"}',
            b'{"msg_id": "a", "msg_type": "b", "version": 5}',
            b'{"msg_id": "a", "msg_type": "b", "date": "x", "version": "4.1"}',
            b'{"msg_id": "a", "msg_type": "b", "x": NaN, "y": Infinity}',
            b'{"msg_id": "a", "msg_type": "b", "x": 1e400}',
            b'{"msg_id": "a", "msg_type": "b", "x": 123456789012345678901234567890}',
            b'{"a": 1, "a": 2, "msg_id": "a", "msg_type": "b"}',
            _nested(50),
            _nested(5000),
            _nested(200000),
            b'{"msg_id": "a", "msg_type": "b", "deep": ' + _nested(30) + b"}",
        ]
    ),
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.text(max_size=8),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3)
                ),
                max_leaves=8,
            ),
            max_size=4,
        ),
    ),
)
bad_signature = st.one_of(
    st.binary(max_size=130),
    st.text(max_size=70).map(lambda s: s.encode("utf-8")),  # non-ASCII
    st.sampled_from([b"", b"0" * 64, b"0" * 63, b"0" * 65, b"g" * 64, b"F" * 64, b"0" * 128]),
)


@st.composite
def mutated_messages(draw, session_cls):
    """A real message, serialized, then damaged in one or more ways."""
    scheme = draw(st.integers(0, len(SCHEMES) - 1))
    session = make_session(session_cls, scheme)
    content = draw(
        st.sampled_from([{}, {"code": "1+1"}, {"text": "héllo ✓"}, {"a": [1, {"b": None}]}])
    )
    msg = session.msg(
        "execute_request", content=content, parent={"header": session.msg_header("x")}
    )
    idents = draw(st.lists(st.binary(max_size=8).filter(lambda b: b != DELIM), max_size=3))
    buffers = draw(st.lists(st.binary(max_size=32), max_size=3))
    frames = session.serialize(msg, ident=idents) + buffers
    start = len(idents) + 1  # index of the signature
    resign = False
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "truncate",
                    "reorder",
                    "extra",
                    "empty",
                    "huge",
                    "signature",
                    "frame",
                    "drop_delim",
                ]
            )
        )
        if kind == "truncate":
            frames = frames[: draw(st.integers(0, len(frames)))]
        elif kind == "reorder" and frames:
            frames = draw(st.permutations(frames))
        elif kind == "extra":
            at = draw(st.integers(0, len(frames)))
            frames = frames[:at] + [draw(st.binary(max_size=20) | st.just(DELIM))] + frames[at:]
        elif kind == "empty" and frames:
            frames[draw(st.integers(0, len(frames) - 1))] = b""
        elif kind == "huge" and frames:
            frames[draw(st.integers(0, len(frames) - 1))] = b"{" + b"7" * (1 << 20)
        elif kind == "signature" and start < len(frames):
            frames[start] = draw(bad_signature)
        elif kind == "frame" and start + 1 < len(frames):
            at = draw(st.integers(start + 1, min(start + 4, len(frames) - 1)))
            frames[at] = draw(bad_json)
            resign = draw(st.booleans())  # a valid signature gets past the HMAC check
        elif kind == "drop_delim" and DELIM in frames:
            frames.remove(DELIM)
    return Case(
        frames=frames,
        copy=draw(st.booleans()),
        content=draw(st.booleans()),
        resign=resign,
        scheme=scheme,
    )


# -- tests ---------------------------------------------------------------------


@HYPOTHESIS
@given(frames=small_frames, flags=flags)
def test_random_frame_lists(sessions, frames, flags):
    run(Case(frames=frames, **flags), sessions)


@HYPOTHESIS
@given(data=st.data())
def test_mutated_real_messages(Session_, sessions, data):
    run(data.draw(mutated_messages(Session_)), sessions)


@settings(HYPOTHESIS, max_examples=40)
@given(data=st.data())
def test_mutated_messages_through_recv(Session_, sessions, pair, data):
    case = data.draw(mutated_messages(Session_))
    case.via_socket = True
    run(case, sessions, pair)


@HYPOTHESIS
@given(frame=bad_json, at=st.integers(1, 4), content=st.booleans(), copy=st.booleans())
def test_validly_signed_garbage(Session_, sessions, frame, at, content, copy):
    """A peer holding the key can still send garbage: same verdict, no crash."""
    session = make_session(Session_, 0)
    frames = session.serialize(session.msg("kernel_info_request"))
    frames[1 + at] = frame
    run(Case(frames=frames, copy=copy, content=content, resign=True), sessions)


@pytest.mark.parametrize(
    "frame",
    [_nested(50), _nested(100_000), b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
    ids=["depth50", "list-depth100k", "dict-depth100k"],
)
@pytest.mark.parametrize("at", [1, 2, 3, 4])
def test_deeply_nested_json(sessions, frame, at):
    session = sessions[0][1]
    frames = session.serialize(session.msg("kernel_info_request"))
    frames[1 + at] = frame
    kind, _ = run(Case(frames=frames, resign=True), sessions)
    assert kind == ("ok" if frame == _nested(50) and at > 1 else "error")


@pytest.mark.parametrize(
    "msg_list",
    [
        None,
        42,
        "frames",
        b"<IDS|MSG>",
        (b"<IDS|MSG>", b""),
        {"a": 1},
        [None] * 6,
        [1, 2, 3, 4, 5],
        ["<IDS|MSG>", "sig", "{}", "{}", "{}", "{}"],
    ],
    ids=repr,
)
@pytest.mark.parametrize("copy", [True, False])
def test_wrong_types(sessions, msg_list, copy):
    """Not a list of frames at all: the same exception type as jupyter_client."""
    for ours, theirs in sessions:
        for method in ("feed_identities", "deserialize"):
            outcomes = []
            for s in (ours, theirs):
                try:
                    getattr(s, method)(msg_list, copy=copy)
                except Exception as e:  # compared below
                    outcomes.append(type(e))
                else:
                    outcomes.append(None)
            assert outcomes[0] is outcomes[1], (method, outcomes)
            if outcomes[0] is not None and outcomes[0] not in (AttributeError,):
                assert issubclass(outcomes[0], DOCUMENTED)
        still_usable(ours)


def test_huge_frames(sessions):
    """64 MiB frames are hashed or rejected, never copied into trouble."""
    ours, theirs = sessions[0]
    frames = ours.serialize(ours.msg("x"))
    frames[-1] = b'{"x": "' + b"a" * (64 << 20) + b'"}'
    kind, _ = run(Case(frames=frames, resign=True), sessions)
    assert kind == "ok"
    frames.append(b"\0" * (64 << 20))  # a huge buffer is not signed
    kind, _ = run(Case(frames=frames, resign=True, copy=False), sessions)
    assert kind == "ok"
    frames[1] = b"f" * (64 << 20)  # huge signature
    kind, err = run(Case(frames=frames), sessions)
    assert kind == "error" and isinstance(err, ValueError)
