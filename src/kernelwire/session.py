"""kernelwire.Session: jupyter_client's Session with its hot paths in a core.

The class is a real subclass of ``jupyter_client.session.Session`` (every
``Instance(Session)`` trait in the ecosystem accepts it) and keeps all of its
traits and configuration.  What changes is where the work happens: every
method that runs per message delegates to a ``SessionCore`` from the
selected core (compiled ``_ccore`` or pure ``_pycore``), which holds a plain
copy of the traits it needs, refreshed by trait observers.
"""

from __future__ import annotations

import pprint
import typing as t
from types import ModuleType

import zmq
import zmq.asyncio
from jupyter_client import session as jc_session
from jupyter_client.adapter import adapt
from traitlets import observe
from traitlets.log import get_logger
from zmq.eventloop.zmqstream import ZMQStream

from . import _process
from ._core import core as _selected_core
from ._io import zmqio as _selected_zmqio

DONE = jc_session.DONE
Message = jc_session.Message

# Traits mirrored into the core; any change to one of them re-syncs it.
_CORE_TRAITS = (
    "session",
    "username",
    "metadata",
    "pack",
    "unpack",
    "auth",
    "key",
    "digest_mod",
    "digest_history",
    "digest_history_size",
    "debug",
    "check_pid",
    "pid",
    "adapt_version",
    "copy_threshold",
)


class Session(jc_session.Session):
    """Drop-in for :class:`jupyter_client.session.Session` with a compiled core.

    Same constructor, traits, configuration, methods, errors and wire bytes.
    ``kernelwire.implementation`` says which core runs.
    """

    #: the core module this class runs on (tests pin the pure one on a subclass)
    _core_module: t.ClassVar[ModuleType] = _selected_core
    #: how whole messages go over zmq: compiled ``_zmqio`` or the pure ``_pyzmqio``
    _zmqio_module: t.ClassVar[ModuleType] = _selected_zmqio

    def __init_subclass__(cls, **kwargs: t.Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_core_module" in cls.__dict__:  # pinned to another core: its methods
            _install_core_methods(cls)

    def __init__(self, **kwargs: t.Any) -> None:
        self._kw = self._core_module.SessionCore()
        super().__init__(**kwargs)
        self._sync_core()

    # -- keeping the core in step with the traits ---------------------------

    @observe(*_CORE_TRAITS)
    def _core_trait_changed(self, change: t.Any) -> None:
        self._sync_core()

    def _sync_core(self) -> None:
        kw = getattr(self, "_kw", None)
        if kw is None:  # a trait set before __init__ created the core
            return
        kw.session = self.session
        kw.username = self.username
        kw.metadata = self.metadata
        kw.set_packers(self.pack, self.unpack)
        kw.set_auth(self.auth, self.key, self.digest_mod)
        kw.digest_history = self.digest_history
        kw.digest_history_size = self.digest_history_size
        kw.debug = self.debug
        kw.check_pid = self.check_pid
        kw.pid = self.pid
        kw.adapt_version = self.adapt_version
        kw.copy_threshold = self.copy_threshold

    # -- message ids and headers ----------------------------------------------

    @property
    def msg_id(self) -> str:  # type: ignore[override]
        """A new message id: ``{session}_{pid}_{counter}``."""
        return self._kw.msg_id()

    @property  # type: ignore[override]
    def message_count(self) -> int:
        """The counter the next msg_id will carry."""
        return self._kw.message_count

    @message_count.setter
    def message_count(self, value: int) -> None:
        self._kw.message_count = value

    def msg_header(self, msg_type: str) -> dict[str, t.Any]:
        """Create a header for a message type."""
        return self._kw.msg_header(msg_type)

    def msg(
        self,
        msg_type: str,
        content: dict | None = None,
        parent: dict[str, t.Any] | None = None,
        header: dict[str, t.Any] | None = None,
        metadata: dict[str, t.Any] | None = None,
    ) -> dict[str, t.Any]:
        """Return the nested message dict."""
        return self._kw.msg(msg_type, content, parent, header, metadata)

    # -- signing and (de)serialization ------------------------------------------

    def sign(self, msg_list: list) -> bytes:
        """The hex HMAC of the packed frames, as bytes; b"" without a key."""
        return self._kw.sign(msg_list)

    def serialize(
        self, msg: dict[str, t.Any], ident: list[bytes] | bytes | None = None
    ) -> list[bytes]:
        """Serialize a message: ``[idents..., DELIM, HMAC, header, parent, metadata, content]``."""
        return self._kw.serialize(msg, ident)

    def deserialize(
        self,
        msg_list: list[bytes] | list[zmq.Message],
        content: bool = True,
        copy: bool = True,
    ) -> dict[str, t.Any]:
        """Verify and unpack ``[HMAC, header, parent, metadata, content, buffers...]``."""
        return self._kw.deserialize(msg_list, content, copy)

    def feed_identities(
        self, msg_list: list[bytes] | list[zmq.Message], copy: bool = True
    ) -> tuple[list[bytes], list[bytes] | list[zmq.Message]]:
        """Split the routing identities from the rest of the message."""
        return self._core_module.feed_identities(msg_list, copy)

    # -- replay protection ------------------------------------------------------

    def _add_digest(self, signature: bytes) -> None:
        self._kw.add_digest(signature)

    def _cull_digest_history(self) -> None:
        self._kw.cull_digest_history()

    # -- sockets ----------------------------------------------------------------

    def send(
        self,
        stream: zmq.sugar.socket.Socket | ZMQStream | None,
        msg_or_type: dict[str, t.Any] | str,
        content: dict[str, t.Any] | None = None,
        parent: dict[str, t.Any] | None = None,
        ident: bytes | list[bytes] | None = None,
        buffers: list[bytes | memoryview] | None = None,
        track: bool = False,
        header: dict[str, t.Any] | None = None,
        metadata: dict[str, t.Any] | None = None,
    ) -> dict[str, t.Any] | None:
        """Build, sign and send a message; returns it with ``msg["tracker"]`` set."""
        if not isinstance(stream, zmq.Socket):
            track = False  # ZMQStreams and duck-typed sockets cannot track
        if isinstance(stream, zmq.asyncio.Socket):
            stream = zmq.Socket.shadow(stream.underlying)
        if isinstance(msg_or_type, (Message, dict)):  # a tuple: no union built per call
            msg = msg_or_type
            buffers = buffers or msg.get("buffers", [])
        else:
            msg = self._kw.msg(msg_or_type, content, parent, header, metadata)
        if self.check_pid and _process.pid != self.pid:
            get_logger().warning("WARNING: attempted to send message from fork\n%s", msg)
            return None
        buffers = [] if buffers is None else buffers
        self._core_module.check_buffers(buffers)
        if self.adapt_version:
            msg = adapt(msg, self.adapt_version)
        to_send = self._kw.serialize(msg, ident)
        to_send.extend(buffers)
        zmqio = self._zmqio_module
        if stream and zmqio.supports(stream):
            # one call; frames of copy_threshold bytes or more go zero-copy, and
            # a tracker only when jupyter_client would track (zero-copy buffers)
            copy_threshold = self.copy_threshold
            tracking = bool(
                buffers and track and max([len(s) for s in to_send]) >= copy_threshold
            )
            tracker = zmqio.send_frames(stream, to_send, copy_threshold, tracking)
        else:
            longest = max([len(s) for s in to_send])
            copy = longest < self.copy_threshold
            if stream and buffers and track and not copy:
                # only really track when we are doing zero-copy buffers
                tracker = stream.send_multipart(to_send, copy=False, track=True)
            elif stream:
                tracker = DONE
                stream.send_multipart(to_send, copy=copy)
            else:
                tracker = DONE
        if self.debug:
            pprint.pprint(msg)  # noqa: T203
            pprint.pprint(to_send)  # noqa: T203
            pprint.pprint(buffers)  # noqa: T203
        msg["tracker"] = tracker
        return msg

    # the compiled core's send takes this path for anything but a plain pyzmq socket
    _send_generic = send

    def send_raw(
        self,
        stream: zmq.sugar.socket.Socket,
        msg_list: list,
        flags: int = 0,
        copy: bool = True,
        ident: bytes | list[bytes] | None = None,
    ) -> None:
        """Send an already packed ``[header, parent, metadata, content, buffers...]``."""
        to_send = self._kw.signed_prefix(msg_list, ident)
        to_send.extend(msg_list)
        if isinstance(stream, zmq.asyncio.Socket):
            stream = zmq.Socket.shadow(stream.underlying)
        zmqio = self._zmqio_module
        if zmqio.supports(stream):
            # copy=True copies every frame, as pyzmq would
            threshold = (1 << 62) if copy else self.copy_threshold
            zmqio.send_frames(stream, to_send, threshold, False, flags)
        else:
            stream.send_multipart(to_send, flags, copy=copy)

    def recv(
        self,
        socket: zmq.sugar.socket.Socket,
        mode: int = zmq.NOBLOCK,
        content: bool = True,
        copy: bool = True,
    ) -> tuple[list[bytes] | None, dict[str, t.Any] | None]:
        """Receive and unpack a message: ``(idents, msg)``, or ``(None, None)`` if none waits."""
        if isinstance(socket, ZMQStream):
            socket = socket.socket
        if isinstance(socket, zmq.asyncio.Socket):
            socket = zmq.Socket.shadow(socket.underlying)
        zmqio = self._zmqio_module
        try:
            # one call; anything but a plain pyzmq socket gets its own recv_multipart
            msg_list = zmqio.recv_frames(socket, mode, copy)
        except zmq.ZMQError as e:
            if e.errno == zmq.EAGAIN:
                return None, None
            raise
        idents, msg_list = self._core_module.feed_identities(msg_list, copy)
        return idents, self.deserialize(msg_list, content=content, copy=copy)

    # the compiled core's recv takes this path for anything but a plain pyzmq socket
    _recv_generic = recv


# Session's thin per-message wrappers; a compiled core replaces them with
# functions of its own that skip the Python frame (SESSION_METHODS).
_PYTHON_WRAPPERS = {
    name: Session.__dict__[name]
    for name in (
        "msg", "msg_header", "sign", "serialize", "deserialize", "feed_identities", "send", "recv"
    )
}
_CORE_FUNCTIONS = {id(fn) for fn in _PYTHON_WRAPPERS.values()}


def _install_core_methods(cls: type[Session]) -> None:
    """Give ``cls`` its core's fast methods, unless it overrides them itself."""
    fast = cls._core_module.SESSION_METHODS
    for name, wrapper in _PYTHON_WRAPPERS.items():
        for klass in cls.__mro__:
            if name in klass.__dict__:
                current = klass.__dict__[name]
                break
        if id(current) not in _CORE_FUNCTIONS:
            continue  # a subclass's own override wins
        chosen = fast.get(name, wrapper)
        _CORE_FUNCTIONS.add(id(chosen))
        setattr(cls, name, chosen)


_install_core_methods(Session)
