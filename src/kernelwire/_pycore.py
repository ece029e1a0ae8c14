"""The pure-Python core: the reference twin of the compiled ``_ccore``.

Both modules export the same names with the same signatures and behaviour
(tests/test_twin_contract.py checks it; _core.py imports them by name).
This one runs when the extension is missing or ``KERNELWIRE_PURE=1`` is set,
and its send, send_raw and recv are also the compiled core's path for every
stream that is not a plain pyzmq socket.  Anything here that looks like a
detour is there to match jupyter_client byte for byte and exception for
exception.

The path of a send, top to bottom in this file:
``session_send`` -> ``SessionCore.msg`` (header, ids) -> ``SessionCore.serialize``
(pack, then ``SessionCore.sign``) -> the I/O module's ``send_frames``
(``_pyzmqio`` or ``_zmqio``; other streams: their ``send_multipart``).
The path of a receive: ``session_recv`` -> the I/O module's ``recv_frames``
-> ``feed_identities`` -> ``SessionCore.deserialize`` (replay check,
signature, unpack, dates, ``adapt``).
"""

from __future__ import annotations

import itertools
import pprint
import typing as t
from datetime import datetime

import zmq
import zmq.asyncio
from jupyter_client import jsonutil
from jupyter_client import session as jc_session
from traitlets.log import get_logger
from zmq.eventloop.zmqstream import ZMQStream

from . import _process
from ._protocol import (
    DELIM,
    EMPTY_DICT_FRAME,
    MIN_FRAMES,
    PROTOCOL_VERSION,
    UTC,
    dateutil_utc,
    json_family_packers,
    orjson_dumps_fast,
    orjson_fast_packer,
)
from ._shared_steps import (
    as_buffers,
    check_buffers,
    cull_digest_history,
    pack_content,
    print_sent,
    routing_prefix,
    signature_matches,
    signed_prefix,
)
from ._shm import DESCRIPTOR_KEY as _SHM_DESCRIPTOR_KEY
from ._shm import incoming as _shm_incoming

IMPLEMENTATION = "pure"

_original_parse_date = jsonutil.parse_date
_extract_header = jc_session.extract_header
_adapt = jc_session.adapt
_DONE = jc_session.DONE
_Message = jc_session.Message


# ---------------------------------------------------------------------------
# dates
# ---------------------------------------------------------------------------


def _maybe_iso_date(s: str) -> bool:
    """Cheap pre-check: could jsonutil.ISO8601_PAT match this string?

    The pattern fixes the positions of '-', 'T' and ':' and bounds the length
    (19 to 32 characters, plus an optional trailing newline that ``$``
    accepts), so anything failing this test cannot match.
    """
    return (
        19 <= len(s) <= 33
        and s[4] == "-"
        and s[7] == "-"
        and s[10] == "T"
        and s[13] == ":"
        and s[16] == ":"
    )


def parse_utc_stamp(s: t.Any) -> t.Any:
    """The datetime of an ASCII ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` stamp, else None.

    Identical to what dateutil (and so jsonutil.parse_date) returns for it.
    """
    if type(s) is not str or not _maybe_iso_date(s):
        return None
    n = len(s)
    if s[-1] == "Z" and s.isascii() and (n == 20 or (n >= 22 and n <= 27 and s[19] == ".")):
        digits = s[0:4] + s[5:7] + s[8:10] + s[11:13] + s[14:16] + s[17:19]
        frac = s[20:-1]
        if digits.isdigit() and (not frac or frac.isdigit()):
            hour = int(s[11:13])
            if hour < 24:
                micro = int(frac) * 10 ** (6 - len(frac)) if frac else 0
                try:
                    return datetime(
                        int(s[0:4]), int(s[5:7]), int(s[8:10]),
                        hour, int(s[14:16]), int(s[17:19]), micro,
                        tzinfo=dateutil_utc,
                    )
                except ValueError:
                    pass  # out of range: the caller's parser raises its own error
    return None


def parse_date(s: str) -> t.Any:
    """Equivalent of jupyter_client.jsonutil.parse_date for one string.

    The common case, ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` in ASCII, is parsed
    here into the same datetime dateutil returns (tzinfo ``tz.UTC``);
    every other string that could match the ISO pattern goes to
    jupyter_client's own parser, so errors and warnings stay identical.
    """
    if not _maybe_iso_date(s):
        return s
    dt = parse_utc_stamp(s)
    return _original_parse_date(s) if dt is None else dt


def extract_dates(obj: t.Any) -> t.Any:
    """Equivalent of jupyter_client.jsonutil.extract_dates, with a fast parser."""
    if isinstance(obj, dict):
        # a loop, as jupyter_client's: a comprehension is a second frame per
        # level on Python < 3.12 and would hit the recursion limit sooner
        new = {}
        for k, v in obj.items():
            new[k] = extract_dates(v)
        return new
    if isinstance(obj, list | tuple):
        return [extract_dates(o) for o in obj]
    if isinstance(obj, str):
        return parse_date(obj)
    return obj


# ---------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------


def feed_identities(msg_list: t.Any, copy: bool = True) -> tuple[list, list]:
    """Split routing identities from the rest of a message, as jupyter_client does."""
    if copy:
        idx = msg_list.index(DELIM)
        return msg_list[:idx], msg_list[idx + 1 :]
    for idx, m in enumerate(msg_list):  # noqa: B007 - used after the loop
        if m.bytes == DELIM:
            break
    else:
        raise ValueError("DELIM not in msg_list")
    return [bytes(m.bytes) for m in msg_list[:idx]], msg_list[idx + 1 :]


def register_frame_type(cls: type) -> None:
    """Frames of ``cls`` are read through ``.bytes`` here: nothing to register."""


def adapt(message: dict) -> dict:
    """jupyter_client.adapter.adapt, skipped when it would change nothing."""
    header = message["header"]
    if type(header) is dict and "date" in header:
        version = header.get("version")
        if type(version) is str and version[:1] == "5" and (len(version) == 1 or version[1] == "."):
            return message
    return _adapt(message)


# ---------------------------------------------------------------------------
# the per-Session state
# ---------------------------------------------------------------------------


class SessionCore:
    """Everything a Session's hot paths need, in plain attributes.

    kernelwire.Session keeps this in step with its traits (observers), so the
    hot paths never pay for a traitlets lookup.  ``session``, ``pack``,
    ``unpack`` and ``auth`` change only through their setters, as in the
    compiled twin.
    """

    def __init__(self) -> None:
        self._session = ""
        self.username = ""
        self.metadata: dict = {}
        self._pack: t.Callable = jc_session.json_packer
        self._unpack: t.Callable = jc_session.json_unpacker
        self._auth: t.Any = None
        self.digest_history: set = set()
        self.digest_history_size = 2**16
        self.debug = False
        self.check_pid = True
        self.pid = 0
        self.adapt_version = 0
        self.copy_threshold = 2**16
        self._counter = itertools.count()
        self._fast_pack: t.Callable | None = None
        self._json_family = False
        self.shm: t.Any = None  # a _shm.SharedMemory when shared memory is on

    # -- configuration -----------------------------------------------------

    @property
    def session(self) -> str:
        return self._session

    @session.setter
    def session(self, value: str) -> None:
        self._session = value

    @property
    def pack(self) -> t.Callable:
        return self._pack

    @property
    def unpack(self) -> t.Callable:
        return self._unpack

    @property
    def auth(self) -> t.Any:
        return self._auth

    @property
    def compiled_hmac(self) -> bool:
        """True when signing runs on a compiled HMAC: never in the pure core."""
        return False

    def set_packers(self, pack: t.Callable, unpack: t.Callable) -> None:
        self._pack = pack
        self._unpack = unpack
        self._json_family = pack in json_family_packers
        self._fast_pack = orjson_dumps_fast if pack is orjson_fast_packer else None

    def set_auth(self, auth: t.Any, key: bytes | None = None, digest_mod: t.Any = None) -> None:
        """Sign with ``auth`` (key and digest_mod let the compiled twin key its own HMAC)."""
        self._auth = auth

    @property
    def message_count(self) -> int:
        """The number the next msg_id will carry."""
        # itertools.count has no peek: copy its state through its repr
        return int(repr(self._counter)[6:-1])

    @message_count.setter
    def message_count(self, value: int) -> None:
        self._counter = itertools.count(value)

    # -- headers -----------------------------------------------------------

    def msg_id(self) -> str:
        return f"{self._session}_{_process.pid}_{next(self._counter)}"

    def msg_header(self, msg_type: str) -> dict[str, t.Any]:
        return {
            "msg_id": self.msg_id(),
            "msg_type": msg_type,
            "username": self.username,
            "session": self._session,
            "date": datetime.now(UTC),
            "version": PROTOCOL_VERSION,
        }

    def msg(
        self,
        msg_type: str,
        content: dict | None = None,
        parent: t.Any = None,
        header: dict | None = None,
        metadata: dict | None = None,
    ) -> dict[str, t.Any]:
        header = self.msg_header(msg_type) if header is None else header
        md = self.metadata.copy()
        if metadata is not None:
            md.update(metadata)
        return {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": header["msg_type"],
            "parent_header": {} if parent is None else _extract_header(parent),
            "content": {} if content is None else content,
            "metadata": md,
        }

    # -- signing -----------------------------------------------------------

    def sign(self, msg_list: t.Sequence) -> bytes:
        auth = self._auth
        if auth is None:
            return b""
        h = auth.copy()
        for m in msg_list:
            h.update(m)
        return h.hexdigest().encode()

    # -- replay history ----------------------------------------------------

    def add_digest(self, signature: t.Any) -> None:
        if self.digest_history_size == 0:
            return
        history = self.digest_history
        history.add(signature)
        if len(history) > self.digest_history_size:
            self.cull_digest_history()

    def cull_digest_history(self) -> None:
        cull_digest_history(self.digest_history, self.digest_history_size)

    # -- packing -----------------------------------------------------------

    def pack_part(self, obj: t.Any) -> bytes:
        if self._json_family and type(obj) is dict and not obj:
            return EMPTY_DICT_FRAME
        fast = self._fast_pack
        if fast is not None:
            try:
                return fast(obj)
            except Exception:
                pass  # the packer's own fallback decides (and warns)
        return self._pack(obj)

    def serialize(self, msg: dict, ident: t.Any = None) -> list:
        content = msg.get("content", {})
        if type(content) is dict:
            content = self.pack_part(content)
        else:
            content = pack_content(content, self.pack_part)
        real_message = [
            self.pack_part(msg["header"]),
            self.pack_part(msg["parent_header"]),
            self.pack_part(msg["metadata"]),
            content,
        ]
        to_send = routing_prefix(ident)
        to_send.append(self.sign(real_message))
        to_send.extend(real_message)
        return to_send

    def deserialize(self, msg_list: list, content: bool = True, copy: bool = True) -> dict:
        message: dict[str, t.Any] = {}
        if not copy:
            # the first frames are small: take them as bytes, as jupyter_client does
            msg_list = [bytes(m.bytes) for m in msg_list[:MIN_FRAMES]] + msg_list[MIN_FRAMES:]
        if self._auth is not None:
            signature = msg_list[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if signature in self.digest_history:
                raise ValueError("Duplicate Signature: %r" % signature)
            if content:
                # only a real read is recorded; a peek must not poison the history
                self.add_digest(signature)
            if not signature_matches(signature, self.sign(msg_list[1:5])):
                raise ValueError("Invalid Signature: %r" % signature)
        if not len(msg_list) >= MIN_FRAMES:
            raise TypeError("malformed message, must have at least %i elements" % MIN_FRAMES)
        extract = jc_session.extract_dates  # ipyparallel replaces it: look up per call
        if extract is jsonutil.extract_dates:
            extract = extract_dates
        unpack = self._unpack
        header = unpack(msg_list[1])
        message["header"] = extract(header)
        message["msg_id"] = header["msg_id"]
        message["msg_type"] = header["msg_type"]
        message["parent_header"] = extract(unpack(msg_list[2]))
        message["metadata"] = unpack(msg_list[3])
        message["content"] = unpack(msg_list[4]) if content else msg_list[4]
        message["buffers"] = as_buffers(msg_list[5:])
        if self.shm is not None or _SHM_DESCRIPTOR_KEY in header:
            message = _shm_incoming(self.shm, message)
        if self.debug:
            pprint.pprint(message)
        return adapt(message)


# ---------------------------------------------------------------------------
# the Session's per-message methods (kernelwire.Session binds these)
# ---------------------------------------------------------------------------


def session_msg(
    self: t.Any,
    msg_type: str,
    content: dict | None = None,
    parent: dict | None = None,
    header: dict | None = None,
    metadata: dict | None = None,
) -> dict[str, t.Any]:
    """Return the nested message dict."""
    return self._kw.msg(msg_type, content, parent, header, metadata)


def session_msg_header(self: t.Any, msg_type: str) -> dict[str, t.Any]:
    """Create a header for a message type."""
    return self._kw.msg_header(msg_type)


def session_sign(self: t.Any, msg_list: list) -> bytes:
    """The hex HMAC of the packed frames, as bytes; b"" without a key."""
    return self._kw.sign(msg_list)


def session_serialize(self: t.Any, msg: dict, ident: t.Any = None) -> list:
    """Serialize a message: ``[idents..., DELIM, HMAC, header, parent, metadata, content]``."""
    return self._kw.serialize(msg, ident)


def session_deserialize(
    self: t.Any, msg_list: list, content: bool = True, copy: bool = True
) -> dict[str, t.Any]:
    """Verify and unpack ``[HMAC, header, parent, metadata, content, buffers...]``."""
    return self._kw.deserialize(msg_list, content, copy)


def session_feed_identities(self: t.Any, msg_list: list, copy: bool = True) -> tuple[list, list]:
    """Split the routing identities from the rest of the message."""
    return feed_identities(msg_list, copy)


def session_send(
    self: t.Any,
    stream: t.Any,
    msg_or_type: dict[str, t.Any] | str,
    content: dict[str, t.Any] | None = None,
    parent: dict[str, t.Any] | None = None,
    ident: bytes | list[bytes] | None = None,
    buffers: list | None = None,
    track: bool = False,
    header: dict[str, t.Any] | None = None,
    metadata: dict[str, t.Any] | None = None,
) -> dict[str, t.Any] | None:
    """Build, sign and send a message; returns it with ``msg["tracker"]`` set."""
    kw = self._kw
    if isinstance(stream, zmq.asyncio.Socket):
        stream = zmq.Socket.shadow(stream.underlying)
    if isinstance(msg_or_type, (_Message, dict)):  # a tuple: no union built per call
        msg = msg_or_type
        buffers = buffers or msg.get("buffers", [])
    else:
        msg = kw.msg(msg_or_type, content, parent, header, metadata)
    if kw.check_pid and _process.pid != kw.pid:
        get_logger().warning("WARNING: attempted to send message from fork\n%s", msg)
        return None
    buffers = [] if buffers is None else buffers
    check_buffers(buffers)
    if kw.adapt_version:
        msg = _adapt(msg, kw.adapt_version)
    wire = msg
    if kw.shm is not None:  # big buffers go through shared memory, their frames empty
        wire, buffers = kw.shm.outgoing(msg, buffers, ident)
    to_send = kw.serialize(wire, ident)
    to_send.extend(buffers)
    copy_threshold = kw.copy_threshold
    # jupyter_client tracks only when the message goes zero-copy, and only on
    # real sockets (ZMQStreams and duck-typed sockets cannot track)
    tracking = bool(
        buffers
        and track
        and isinstance(stream, zmq.Socket)
        and max([len(s) for s in to_send]) >= copy_threshold
    )
    zmqio = type(self)._zmqio_module
    if not stream:
        tracker = _DONE
    elif zmqio.supports(stream):
        # one call; frames of copy_threshold bytes or more go zero-copy
        tracker = zmqio.send_frames(stream, to_send, copy_threshold, tracking)
    else:
        copy = max([len(s) for s in to_send]) < copy_threshold
        if tracking:
            tracker = stream.send_multipart(to_send, copy=False, track=True)
        else:
            tracker = _DONE
            stream.send_multipart(to_send, copy=copy)
    if kw.debug:
        print_sent(msg, to_send, buffers)
    msg["tracker"] = tracker
    return msg


def session_send_raw(
    self: t.Any,
    stream: t.Any,
    msg_list: list,
    flags: int = 0,
    copy: bool = True,
    ident: bytes | list[bytes] | None = None,
) -> None:
    """Send an already packed ``[header, parent, metadata, content, buffers...]``."""
    to_send = signed_prefix(self._kw.sign(msg_list[0:4]), ident)
    to_send.extend(msg_list)
    if isinstance(stream, zmq.asyncio.Socket):
        stream = zmq.Socket.shadow(stream.underlying)
    zmqio = type(self)._zmqio_module
    if zmqio.supports(stream):
        # copy=True copies every frame, as pyzmq would
        threshold = (1 << 62) if copy else self._kw.copy_threshold
        zmqio.send_frames(stream, to_send, threshold, False, flags)
    else:
        stream.send_multipart(to_send, flags, copy=copy)


def session_recv(
    self: t.Any,
    socket: t.Any,
    mode: int = zmq.NOBLOCK,
    content: bool = True,
    copy: bool = True,
) -> tuple[list | None, dict[str, t.Any] | None]:
    """Receive and unpack a message: ``(idents, msg)``, or ``(None, None)`` if none waits."""
    if isinstance(socket, ZMQStream):
        socket = socket.socket
    if isinstance(socket, zmq.asyncio.Socket):
        socket = zmq.Socket.shadow(socket.underlying)
    try:
        # one call; anything but a plain pyzmq socket gets its own recv_multipart
        msg_list = type(self)._zmqio_module.recv_frames(socket, mode, copy)
    except zmq.ZMQError as e:
        if e.errno == zmq.EAGAIN:
            return None, None
        raise
    idents, msg_list = feed_identities(msg_list, copy)
    return idents, self.deserialize(msg_list, content=content, copy=copy)
