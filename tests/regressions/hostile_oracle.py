"""Feed one hostile frame list to kernelwire and to jupyter_client, compare.

Shared by the hypothesis tests (tests/test_hostile*.py), the fuzz harness
(fuzz/fuzz_session.py) and the fuzz-finding regression tests, so all three
judge an input by the same rule:

- kernelwire raises only what jupyter_client raises on the same input (the
  same exception type), or both accept it and return the same message;
- both leave the replay history in the same state;
- the kernelwire Session still sends and receives a normal message afterwards.

A case is encoded as bytes (the fuzzer's input and the corpus file format):
one flag byte, then frames, each a 4-byte little-endian length and that many
bytes; a length running past the end takes what is left.
"""

from __future__ import annotations

import dataclasses
import datetime
import struct
import sys
import typing as t

import zmq
from jupyter_client import session as jc_session

KEY = b"kernelwire-hostile-input-key"
# the schemes a case can pick (flag bits 3-4); None: no key, no signing
SCHEMES: tuple[str | None, ...] = ("hmac-sha256", "hmac-sha512", "hmac-md5", None)
DELIM = b"<IDS|MSG>"
# What jupyter_client's receive path raises on hostile frames: ValueError for
# signatures, framing and JSON, TypeError for short messages and wrong types,
# KeyError/IndexError for missing fields and frames, RecursionError for deep
# nesting.  Beyond these, kernelwire must raise exactly what jupyter_client
# raises (e.g. its adapter's AttributeError on a peeked protocol-4 message).
DOCUMENTED = (ValueError, TypeError, KeyError, IndexError, RecursionError)


@dataclasses.dataclass
class Case:
    frames: list[bytes]
    copy: bool = True  # bytes frames (True) or zmq.Frame objects (False)
    content: bool = True  # unpack the content (False: peek)
    resign: bool = False  # replace the signature by a valid one for frames 1-4
    scheme: int = 0  # index into SCHEMES
    split: bool = True  # run feed_identities first (False: frames go to deserialize as they are)
    via_socket: bool = False  # send the frames over a socket pair and call Session.recv

    def encode(self) -> bytes:
        flags = (
            self.copy
            | self.content << 1
            | self.resign << 2
            | (self.scheme & 3) << 3
            | (not self.split) << 5
            | self.via_socket << 6
        )
        out = bytearray([flags])
        for f in self.frames:
            out += struct.pack("<I", len(f)) + f
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Case:
        if not data:
            return cls(frames=[])
        flags = data[0]
        frames = []
        pos = 1
        while pos < len(data):
            head = data[pos : pos + 4]
            (n,) = struct.unpack("<I", head.ljust(4, b"\0"))
            pos += 4
            frames.append(data[pos : pos + n])
            pos += n
        return cls(
            frames=frames,
            copy=bool(flags & 1),
            content=bool(flags & 2),
            resign=bool(flags & 4),
            scheme=(flags >> 3) & 3,
            split=not flags & 32,
            via_socket=bool(flags & 64),
        )


def make_session(cls: type, scheme: int) -> t.Any:
    name = SCHEMES[scheme]
    if name is None:
        return cls(key=b"")
    return cls(key=KEY, signature_scheme=name)


def _normalise(obj: t.Any) -> t.Any:
    """Comparable form of a deserialized message (buffers and frames as bytes)."""
    if isinstance(obj, dict):
        return {k: _normalise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_normalise(v) for v in obj]
    if isinstance(obj, memoryview):
        return bytes(obj)
    if isinstance(obj, zmq.Frame):
        return bytes(obj.bytes)
    if (
        isinstance(obj, datetime.datetime)
        and obj.tzinfo is datetime.timezone.utc
        and abs(datetime.datetime.now(datetime.timezone.utc) - obj).total_seconds() < 600
    ):
        return "<now>"  # adapt() stamps a header without a date when it reads it
    return obj


def _outcome(fn: t.Callable[[], t.Any]) -> tuple[str, t.Any]:
    try:
        result = fn()
    except Exception as e:  # the type is the outcome
        return "error", e
    # repr: NaN from the json fallback never compares equal to itself.  A result
    # nested close to the recursion limit must still be comparable: lift it.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        return "ok", repr(_normalise(result))
    finally:
        sys.setrecursionlimit(limit)


def _frames_for(case: Case, frames: list[bytes]) -> list:
    return list(frames) if case.copy else [zmq.Frame(f) for f in frames]


def _resigned(case: Case, session: t.Any) -> list[bytes]:
    frames = list(case.frames)
    if not case.resign:
        return frames
    start = frames.index(DELIM) + 1 if case.split and DELIM in frames else 0
    if start < len(frames):
        frames[start] = session.sign(frames[start + 1 : start + 5])
    return frames


def socket_pair(ctx: zmq.Context, name: str) -> tuple[zmq.Socket, zmq.Socket]:
    """A connected inproc PAIR for recv cases (the receiver times out after 5 s)."""
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.linger = b.linger = 0
    b.rcvtimeo = 5000
    a.bind(f"inproc://{name}")
    b.connect(f"inproc://{name}")
    return a, b


def receive(session: t.Any, case: Case, frames: list[bytes], pair: tuple | None = None) -> t.Any:
    """What a Session's recv does with the frames it got off the socket."""
    if case.via_socket and pair is not None and frames:
        sender, receiver = pair
        sender.send_multipart(frames)
        return session.recv(receiver, mode=0, content=case.content, copy=case.copy)
    msg_list = _frames_for(case, frames)
    idents: list = []
    if case.split:
        idents, msg_list = session.feed_identities(msg_list, copy=case.copy)
    return idents, session.deserialize(msg_list, content=case.content, copy=case.copy)


def _describe(outcome: tuple[str, t.Any]) -> str:
    kind, value = outcome
    return f"{type(value).__name__}: {value}" if kind == "error" else f"ok: {value[:300]}"


def check(
    case: Case, kw_session: t.Any, jc_session_: t.Any, pair: tuple | None = None
) -> tuple[str, t.Any]:
    """Run the case through both Sessions; AssertionError on any disagreement.

    Both Sessions must be keyed alike; their histories are cleared first so
    the verdict depends on the case alone.  Returns kernelwire's outcome.
    """
    kw_session.digest_history.clear()
    jc_session_.digest_history.clear()
    frames = _resigned(case, jc_session_)
    ours = _outcome(lambda: receive(kw_session, case, frames, pair))
    theirs = _outcome(lambda: receive(jc_session_, case, frames, pair))
    if ours[0] != theirs[0] or (ours[0] == "error" and type(ours[1]) is not type(theirs[1])):
        raise AssertionError(
            f"kernelwire {_describe(ours)} but jupyter_client {_describe(theirs)} for {case!r}"
        )
    if ours[0] == "ok" and ours[1] != theirs[1]:
        raise AssertionError(f"results differ: {ours[1][:500]} != {theirs[1][:500]}")
    if kw_session.digest_history != jc_session_.digest_history:
        raise AssertionError(f"replay histories differ after {case!r}")
    still_usable(kw_session)
    return ours


def still_usable(session: t.Any) -> None:
    """The Session signs, serializes and verifies a normal message afterwards."""
    msg = session.msg("status", content={"execution_state": "idle"})
    frames = session.serialize(msg, ident=[b"peer"])
    idents, rest = session.feed_identities(frames)
    back = session.deserialize(rest)
    assert idents == [b"peer"]
    assert back["content"] == {"execution_state": "idle"}
    assert back["header"]["msg_id"] == msg["header"]["msg_id"]


def jc_session_class() -> type:
    """jupyter_client's own Session, even when kernelwire was installed over it."""
    cls = jc_session.Session
    while cls.__module__ != "jupyter_client.session":
        cls = cls.__mro__[1]
    return cls
