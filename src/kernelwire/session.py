"""kernelwire.Session: jupyter_client's Session with its hot paths in a core.

The class is a real subclass of ``jupyter_client.session.Session`` (every
``Instance(Session)`` trait in the ecosystem accepts it) and keeps all of its
traits and configuration.  This file only keeps a ``SessionCore`` (a plain
copy of the traits the hot paths need) in step with the traits, and binds
the core's functions as the per-message methods: ``msg``, ``serialize``,
``send``, ``recv`` ... are ``session_*`` functions of the selected core,
``_ccore.pyx`` (compiled) or ``_pycore.py`` (pure), where a send and a
receive can be read whole.
"""

from __future__ import annotations

import os
import typing as t
from types import ModuleType

from jupyter_client import session as jc_session
from traitlets import Enum, Float, Integer, default, observe

from . import _core, _shm
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
    "shared_memory_threshold",
    "shared_memory_limit",
    "shared_memory_linger",
    "shared_memory_peers",
)

#: environment defaults of the shared-memory traits (how a Cluster sets its processes)
THRESHOLD_VARIABLE = "KERNELWIRE_SHARED_MEMORY_THRESHOLD"
PEERS_VARIABLE = "KERNELWIRE_SHARED_MEMORY_PEERS"

# Session method -> the core function it is
_CORE_METHODS = {
    "msg": "session_msg",
    "msg_header": "session_msg_header",
    "sign": "session_sign",
    "serialize": "session_serialize",
    "deserialize": "session_deserialize",
    "feed_identities": "session_feed_identities",
    "send": "session_send",
    "send_raw": "session_send_raw",
    "recv": "session_recv",
}


def _core_methods(core: ModuleType) -> dict[str, t.Any]:
    return {method: getattr(core, function) for method, function in _CORE_METHODS.items()}


class Session(jc_session.Session):
    """Drop-in for :class:`jupyter_client.session.Session` with a compiled core.

    Same constructor, traits, configuration, methods, errors and wire bytes.
    ``kernelwire.implementation`` says which core runs; ``Session.pinned``
    gives a class on a chosen core and I/O module.
    """

    #: the core module this class runs on (see pinned)
    _core_module: t.ClassVar[ModuleType] = _selected_core
    #: how whole messages go over zmq: compiled ``_zmqio`` or the pure ``_pyzmqio``
    _zmqio_module: t.ClassVar[ModuleType] = _selected_zmqio

    # The per-message methods are the core's own functions (signatures and
    # docstrings as jupyter_client's): read them in _ccore.pyx or _pycore.py.
    msg = _selected_core.session_msg
    msg_header = _selected_core.session_msg_header
    sign = _selected_core.session_sign
    serialize = _selected_core.session_serialize
    deserialize = _selected_core.session_deserialize
    feed_identities = _selected_core.session_feed_identities
    send = _selected_core.session_send
    send_raw = _selected_core.session_send_raw
    recv = _selected_core.session_recv

    shared_memory_threshold = Integer(
        0,
        config=True,
        help="""Buffers of at least this many bytes travel through shared memory (0: off).

        Setting it states that this Session's peers are kernelwire Sessions on
        this host with it set too (see shared_memory_peers).  Linux only;
        elsewhere buffers stay frames.  Default: $KERNELWIRE_SHARED_MEMORY_THRESHOLD or 0.""",
    )
    shared_memory_limit = Integer(
        config=True,
        help="""Bytes of shared memory this Session may hold at once; past it, and when
        /dev/shm is full, buffers go as frames (logged).  Default: half of /dev/shm.""",
    )
    shared_memory_linger = Float(
        30.0,
        config=True,
        help="""Seconds a segment sent in anything but a request stays (its receivers map
        it on receipt).  A request's segments stay until its reply, plus 2 s.""",
    )
    shared_memory_peers = Enum(
        ("all", "known"),
        config=True,
        help="""'all': every peer can map our segments (the user says so).  'known': only
        replies to kernelwire requests from this host, and messages routed to peers whose
        own messages said they can (what kernelwire.ipp.Cluster uses, so stock or remote
        engines get frames).  Default: $KERNELWIRE_SHARED_MEMORY_PEERS or 'all'.""",
    )

    @default("shared_memory_threshold")
    def _default_shared_memory_threshold(self) -> int:
        return int(os.environ.get(THRESHOLD_VARIABLE) or 0)

    @default("shared_memory_limit")
    def _default_shared_memory_limit(self) -> int:
        try:
            st = os.statvfs(_shm.SHM_DIR)
        except OSError:
            return 0
        return st.f_blocks * st.f_frsize // 2

    @default("shared_memory_peers")
    def _default_shared_memory_peers(self) -> str:
        return os.environ.get(PEERS_VARIABLE) or "all"

    @property
    def shared_memory(self) -> _shm.SharedMemory | None:
        """This Session's shared memory (segments held, peers learned), or None when off."""
        kw = getattr(self, "_kw", None)
        return None if kw is None else kw.shm

    @classmethod
    def pinned(cls, core: str | None = None, io: str | None = None) -> type[Session]:
        """This class on a chosen core and I/O module: ``"cython"`` or ``"pure"`` each.

        ``None`` keeps the one selected at import.  ``Session.pinned("pure",
        "pure")`` runs exactly what a pure install runs.  ImportError when
        the compiled module asked for is not built.  Cached: one pin, one
        class.
        """
        key = (cls, core, io)
        found = _PINNED.get(key)
        if found is None:
            core_module = (
                cls._core_module if core is None else _core.named(core, "_ccore", "_pycore")
            )
            io_module = (
                cls._zmqio_module
                if io is None
                else _core.named(io, "_zmqio", "_pyzmqio", check=False)
            )
            namespace: dict[str, t.Any] = {
                "_core_module": core_module,
                "_zmqio_module": io_module,
                "__module__": cls.__module__,
            }
            # the core's methods, except where cls overrides one itself
            for method, function in _core_methods(core_module).items():
                if getattr(cls, method) is getattr(cls._core_module, _CORE_METHODS[method]):
                    namespace[method] = function
            name = (
                f"{cls.__name__}[core={core_module.IMPLEMENTATION},io={io_module.IMPLEMENTATION}]"
            )
            found = _PINNED[key] = type(name, (cls,), namespace)
        return found

    @classmethod
    def implementations(cls) -> dict[str, str]:
        """What this class runs: ``{"core": "cython" | "pure", "io": "cython" | "pure"}``."""
        return {"core": cls._core_module.IMPLEMENTATION, "io": cls._zmqio_module.IMPLEMENTATION}

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
        kw.shm = self._sync_shared_memory(kw.shm)

    def _sync_shared_memory(self, shm: _shm.SharedMemory | None) -> _shm.SharedMemory | None:
        if self.shared_memory_threshold <= 0 or not _shm.supported():
            if shm is not None:
                shm.release_all()
            return None
        if shm is None:
            return _shm.SharedMemory(
                self.shared_memory_threshold,
                self.shared_memory_limit,
                self.shared_memory_linger,
                peers=self.shared_memory_peers,
            )
        shm.threshold = self.shared_memory_threshold
        shm.limit = self.shared_memory_limit
        shm.linger = self.shared_memory_linger
        shm.peers = self.shared_memory_peers
        return shm

    # -- message ids and the replay history --------------------------------------

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

    def _add_digest(self, signature: bytes) -> None:
        self._kw.add_digest(signature)

    def _cull_digest_history(self) -> None:
        self._kw.cull_digest_history()


_PINNED: dict[tuple[type, str | None, str | None], type[Session]] = {}
