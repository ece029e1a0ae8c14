"""The contenders: who moves the messages, and how one message is sent or received.

``session`` contenders are Session objects (kernelwire on each core,
jupyter_client with each packer); ``pyzmq`` sends the same frames with bare
send_multipart/recv_multipart; ``floor`` is the C program (floor.py).  A
contender that cannot run here (say, the compiled core is not built) is
reported as not available, never silently dropped.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from .payloads import EXECUTE_REPLY, KEY, Payload, reference_frames


@dataclass(frozen=True)
class Contender:
    name: str  # used on the command line and in the JSON
    label: str  # used in tables and charts
    kind: str  # "session", "pyzmq" or "floor"
    end_to_end: bool = True  # part of the default end-to-end run
    pinned: tuple[str, str] | None = None  # kernelwire: Session.pinned(core, io)


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("kernelwire", "kernelwire", "session", pinned=("cython", "cython")),
        Contender("kernelwire-pure", "kernelwire (pure)", "session", pinned=("pure", "pure")),
        Contender("jupyter_client", "jupyter_client", "session"),
        Contender("jupyter_client-json", "jupyter_client (json)", "session", end_to_end=False),
        Contender("pyzmq", "raw pyzmq", "pyzmq"),
        Contender("floor", "C floor", "floor"),
    )
}

#: the subject of the ratios, then its fallback when the compiled core is missing
KERNELWIRE = ("kernelwire", "kernelwire-pure")


def session_class(name: str) -> type:
    """The Session class of a session contender; ImportError if it cannot run here."""
    contender = CONTENDERS[name]
    if contender.pinned is not None:
        from kernelwire.session import Session

        # ImportError when a compiled module it asks for is not built
        return Session.pinned(*contender.pinned)
    if name.startswith("jupyter_client"):
        from jupyter_client.session import Session

        if Session.__module__ != "jupyter_client.session":  # kernelwire installed over it
            raise ImportError("jupyter_client.session.Session is replaced in this process")
        return Session
    raise KeyError(name)


def make_session(name: str) -> t.Any:
    """A signing Session for a session contender, with the packer it is named after."""
    packer = "json" if name.endswith("-json") else "orjson"
    return session_class(name)(key=KEY, packer=packer)


def availability() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """What this process can run: ``(unavailable, implementations)``.

    ``unavailable`` maps each contender that cannot run here to the reason;
    ``implementations`` maps each kernelwire contender that can to the core
    and I/O modules its Session class runs (``Session.implementations()``).
    """
    unavailable: dict[str, str] = {}
    implementations: dict[str, dict[str, str]] = {}
    for name, contender in CONTENDERS.items():
        if contender.kind != "session":
            continue
        try:
            cls = session_class(name)
        except ImportError as exc:
            unavailable[name] = f"not available ({exc})"
            continue
        if contender.pinned is not None:
            implementations[name] = cls.implementations()
    return unavailable, implementations


class SessionWire:
    """One message at a time through a Session's send/recv."""

    def __init__(self, name: str, payload: Payload) -> None:
        self.session = make_session(name)
        self.payload = payload
        self.buffers = payload.buffers()

    def send(self, sock: t.Any) -> None:
        p = self.payload
        self.session.send(sock, p.msg_type, p.content, buffers=self.buffers)

    def recv(self, sock: t.Any) -> t.Any:
        _, msg = self.session.recv(sock, mode=0, copy=self.payload.recv_copy)
        if msg is None:  # Session.recv turns the receive timeout into (None, None)
            raise TimeoutError("no message within the timeout")
        return msg

    def request(self, sock: t.Any) -> t.Any:
        self.send(sock)
        return self.recv(sock)

    def serve(self, sock: t.Any) -> None:
        idents, msg = self.session.recv(sock, mode=0, copy=self.payload.recv_copy)
        self.session.send(sock, "execute_reply", EXECUTE_REPLY, parent=msg, ident=idents)


class PyzmqWire:
    """The same frames with bare send_multipart/recv_multipart: the transport alone."""

    def __init__(self, payload: Payload) -> None:
        import zmq

        self.payload = payload
        self.frames = reference_frames(payload)
        self.reply = reference_frames(payload, reply=True)
        longest = max(memoryview(f).nbytes for f in self.frames)
        self.copy = longest < zmq.COPY_THRESHOLD  # jupyter_client's rule
        self.delim = self.frames[0]

    def send(self, sock: t.Any) -> None:
        sock.send_multipart(self.frames, copy=self.copy)

    def recv(self, sock: t.Any) -> t.Any:
        return sock.recv_multipart(copy=self.payload.recv_copy)

    def request(self, sock: t.Any) -> t.Any:
        self.send(sock)
        return self.recv(sock)

    def serve(self, sock: t.Any) -> None:
        frames = sock.recv_multipart(copy=self.payload.recv_copy)
        idents = []
        for frame in frames:
            data = frame if isinstance(frame, bytes) else frame.bytes
            if data == self.delim:
                break
            idents.append(data)
        sock.send_multipart(idents + self.reply)


def make_wire(name: str, payload: Payload) -> SessionWire | PyzmqWire:
    kind = CONTENDERS[name].kind
    if kind == "session":
        return SessionWire(name, payload)
    if kind == "pyzmq":
        return PyzmqWire(payload)
    raise ValueError(f"{name} does not run in a Python worker")
