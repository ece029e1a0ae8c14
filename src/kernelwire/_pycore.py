"""The pure-Python core: the reference twin of the compiled ``_ccore``.

Both modules expose the same names with the same behaviour; the test suite
runs against both.  This one is used when the extension is missing or
``KERNELWIRE_PURE=1`` is set.  Anything here that looks like a detour is
there to match jupyter_client byte for byte and exception for exception.
"""

from __future__ import annotations

import itertools
import pprint
import random
import typing as t
from datetime import datetime
from hmac import compare_digest

from jupyter_client import jsonutil
from jupyter_client import session as jc_session

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

IMPLEMENTATION = "pure"

_original_parse_date = jsonutil.parse_date
_extract_header = jc_session.extract_header
_adapt = jc_session.adapt


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


def _frame_bytes(frame: t.Any) -> bytes:
    return bytes(frame.bytes)


def as_buffers(frames: list) -> list:
    """Buffers of a received message as memoryviews (no copy of Frames)."""
    buffers = [memoryview(b) for b in frames]
    if buffers and buffers[0].shape is None:
        # pyzmq #646: an old Frame without a shape; copy, as jupyter_client does
        buffers = [memoryview(bytes(b.bytes)) for b in frames]
    return buffers


# ---------------------------------------------------------------------------
# the per-Session state
# ---------------------------------------------------------------------------


class SessionCore:
    """Everything a Session's hot paths need, in plain attributes.

    kernelwire.Session keeps this in step with its traits (observers), so the
    hot paths never pay for a traitlets lookup.
    """

    def __init__(self) -> None:
        self.session = ""
        self.username = ""
        self.metadata: dict = {}
        self.pack: t.Callable = jc_session.json_packer
        self.unpack: t.Callable = jc_session.json_unpacker
        self.auth: t.Any = None
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

    # -- configuration -----------------------------------------------------

    def set_packers(self, pack: t.Callable, unpack: t.Callable) -> None:
        self.pack = pack
        self.unpack = unpack
        self._json_family = pack in json_family_packers
        self._fast_pack = orjson_dumps_fast if pack is orjson_fast_packer else None

    def set_auth(self, auth: t.Any, key: bytes | None = None, digest_mod: t.Any = None) -> None:
        # key and digest_mod let the compiled twin key its own HMAC; not needed here
        self.auth = auth

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
        return f"{self.session}_{_process.pid}_{next(self._counter)}"

    def msg_header(self, msg_type: str) -> dict[str, t.Any]:
        return {
            "msg_id": self.msg_id(),
            "msg_type": msg_type,
            "username": self.username,
            "session": self.session,
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
        if self.auth is None:
            return b""
        h = self.auth.copy()
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
        """Drop max(10%, excess) of the history, chosen at random, without sorting."""
        history = self.digest_history
        current = len(history)
        n_to_cull = max(current // 10, current - self.digest_history_size)
        if n_to_cull >= current:
            history.clear()
            return
        # a random window of the set's (hash-randomised) order: O(n), no sort
        start = random.randrange(current - n_to_cull + 1)
        victims = list(itertools.islice(history, start, start + n_to_cull))
        history.difference_update(victims)

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
        return self.pack(obj)

    def serialize(self, msg: dict, ident: t.Any = None) -> list:
        content = msg.get("content", {})
        if content is None:
            content = self.pack_part({})
        elif isinstance(content, dict):
            content = self.pack_part(content)
        elif isinstance(content, bytes):
            pass  # already packed, as in a relayed message
        elif isinstance(content, str):
            content = content.encode("utf8")
        else:
            raise TypeError("Content incorrect type: %s" % type(content))
        real_message = [
            self.pack_part(msg["header"]),
            self.pack_part(msg["parent_header"]),
            self.pack_part(msg["metadata"]),
            content,
        ]
        to_send: list = []
        if isinstance(ident, list):
            to_send.extend(ident)
        elif ident is not None:
            to_send.append(ident)
        to_send.append(DELIM)
        to_send.append(self.sign(real_message))
        to_send.extend(real_message)
        return to_send

    def signed_prefix(self, msg_list: list, ident: t.Any = None) -> list:
        """[idents..., DELIM, signature] for an already packed message (send_raw)."""
        to_send: list = []
        if isinstance(ident, bytes):
            ident = [ident]
        if ident is not None:
            to_send.extend(ident)
        to_send.append(DELIM)
        to_send.append(self.sign(msg_list[0:4]))
        return to_send

    def deserialize(self, msg_list: list, content: bool = True, copy: bool = True) -> dict:
        message: dict[str, t.Any] = {}
        if not copy:
            # the first frames are small: take them as bytes, as jupyter_client does
            msg_list = [_frame_bytes(m) for m in msg_list[:MIN_FRAMES]] + msg_list[MIN_FRAMES:]
        if self.auth is not None:
            signature = msg_list[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if signature in self.digest_history:
                raise ValueError("Duplicate Signature: %r" % signature)
            if content:
                # only a real read is recorded; a peek must not poison the history
                self.add_digest(signature)
            check = self.sign(msg_list[1:5])
            if not compare_digest(signature, check):
                raise ValueError("Invalid Signature: %r" % signature)
        if not len(msg_list) >= MIN_FRAMES:
            raise TypeError("malformed message, must have at least %i elements" % MIN_FRAMES)
        extract = jc_session.extract_dates  # ipyparallel replaces it: look up per call
        if extract is jsonutil.extract_dates:
            extract = extract_dates
        unpack = self.unpack
        header = unpack(msg_list[1])
        message["header"] = extract(header)
        message["msg_id"] = header["msg_id"]
        message["msg_type"] = header["msg_type"]
        message["parent_header"] = extract(unpack(msg_list[2]))
        message["metadata"] = unpack(msg_list[3])
        message["content"] = unpack(msg_list[4]) if content else msg_list[4]
        message["buffers"] = as_buffers(msg_list[5:])
        if self.debug:
            pprint.pprint(message)  # noqa: T203
        return adapt(message)


def adapt(message: dict) -> dict:
    """jupyter_client.adapter.adapt, skipped when it would change nothing."""
    header = message["header"]
    if type(header) is dict and "date" in header:
        version = header.get("version")
        if type(version) is str and version[:1] == "5" and (len(version) == 1 or version[1] == "."):
            return message
    return _adapt(message)


# The pure core has no faster form of Session's thin wrappers (see _ccore).
SESSION_METHODS: dict[str, t.Callable] = {}


def check_buffers(buffers: t.Sequence) -> None:
    """Buffers must support the buffer protocol and be contiguous (as jupyter_client checks)."""
    for idx, buf in enumerate(buffers):
        if isinstance(buf, memoryview):
            view = buf
        else:
            try:
                view = memoryview(buf)
            except TypeError as e:
                raise TypeError("Buffer objects must support the buffer protocol.") from e
        if not view.contiguous:
            raise ValueError("Buffer %i (%r) is not contiguous" % (idx, buf))
