# cython: language_level=3, binding=False
"""The compiled core of kernelwire: the per-message work of a Session.

Same names and behaviour as the pure twin, ``kernelwire._pycore`` (read it
first: it is the specification).  Each fast path here is guarded by an exact
type check, and anything unusual is handed to the very code jupyter_client
runs, so results, errors and warnings match it exactly.
"""

import hashlib
import hmac as _hmac_module
import itertools
import os
import pprint
import random

from traitlets.log import get_logger
from hmac import compare_digest

from jupyter_client import jsonutil
from jupyter_client import session as jc_session

from kernelwire._protocol import (
    DELIM,
    EMPTY_DICT_FRAME,
    MIN_FRAMES,
    PROTOCOL_VERSION,
    UTC,
    dateutil_utc,
    json_family_packers,
    json_family_unpackers,
    orjson_fast_packer,
)

cimport cython
from _zmqio cimport ZmqioCAPI, import_zmqio
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.datetime cimport datetime_new, import_datetime
from cpython.dict cimport PyDict_CheckExact, PyDict_Copy, PyDict_GetItem, PyDict_Next, PyDict_Size
from cpython.list cimport PyList_CheckExact, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.set cimport PySet_Add, PySet_Contains, PySet_GET_SIZE
from cpython.unicode cimport PyUnicode_CheckExact
from libc.stdint cimport int64_t
from libc.string cimport memcmp, memcpy

cdef extern from "Python.h":
    object PyObject_Vectorcall(object callable, PyObject **args, size_t nargsf, object kwnames)
    bint PyUnicode_IS_ASCII(object o)
    const char *PyUnicode_1BYTE_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    Py_UCS4 PyUnicode_READ_CHAR(object o, Py_ssize_t index)

cdef extern from "hmac_helper.h":
    ctypedef struct kw_hash_state:
        pass
    ctypedef struct kw_hmac:
        size_t digest_size
        kw_hash_state inner
    int kw_hmac_lookup(kw_hmac *h, const char *name, const char *library)
    int kw_hmac_set_key(kw_hmac *h, const unsigned char *key, size_t key_len)
    int kw_hmac_absorb "kw_hmac_update_state"(const kw_hmac *h, kw_hash_state *s, const void *data, size_t n) nogil
    int kw_hmac_finish(const kw_hmac *h, kw_hash_state *s, unsigned char *digest)

cdef extern from "ct_helper.h":
    int kw_ct_equal(const unsigned char *a, const unsigned char *b, size_t n)
    void kw_hexlify(const unsigned char *data, size_t n, char *out)
    int kw_utc_now(int64_t *seconds, int *microseconds)
    void kw_civil_from_days(int64_t days, int *year, int *month, int *day)

import_datetime()

IMPLEMENTATION = "cython"

cdef object _original_parse_date = jsonutil.parse_date
cdef object _original_extract_dates = jsonutil.extract_dates
cdef object _extract_header = jc_session.extract_header
cdef object _adapt = jc_session.adapt
cdef dict _jc_session_dict = jc_session.__dict__
cdef object _json_default = jsonutil.json_default
cdef object _HMAC = _hmac_module.HMAC
try:
    import _hashlib
    _crypto_module_file = getattr(_hashlib, "__file__", None)
except ImportError:  # a Python without OpenSSL: hashlib's objects only
    _crypto_module_file = None
cdef bytes _PROBE = b"kernelwire: does the fast HMAC agree with the Session's auth?"
# updates larger than this release the GIL while hashing
cdef Py_ssize_t _NOGIL_HASH_BYTES = 1 << 16
cdef bytes _DELIM = DELIM
cdef bytes _EMPTY = EMPTY_DICT_FRAME
cdef object _EMPTY_CONTENT = object()  # a message without "content" packs {}
cdef object _UTC = UTC
cdef object _DATEUTIL_UTC = dateutil_utc
cdef str _VERSION = PROTOCOL_VERSION
cdef Py_ssize_t _MIN_FRAMES = MIN_FRAMES

cdef object _orjson_dumps = None
cdef object _orjson_loads = None
cdef object _orjson_unpacker = None
cdef object _orjson_option = 0
cdef tuple _ORJSON_KWNAMES = ("default", "option")
if orjson_fast_packer is not None:
    import orjson
    _orjson_dumps = orjson.dumps
    _orjson_loads = orjson.loads
    _orjson_unpacker = jc_session.orjson_unpacker
    _orjson_option = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z

# Frame types whose memory can be read directly (zmq.Frame, and the frames
# kernelwire's own receive path makes, registered by that module).
_frame_types = set()
try:
    import zmq as _zmq
    _frame_types.add(_zmq.Frame)
except ImportError:  # pragma: no cover - pyzmq is a dependency
    pass


def register_frame_type(cls):
    """Let deserialize read frames of ``cls`` through the buffer protocol."""
    _frame_types.add(cls)


# the process id in msg_id, refreshed in forked children (no syscall per message)
cdef long _pid = os.getpid()


def _refresh_pid():
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_refresh_pid)


# ---------------------------------------------------------------------------
# dates
# ---------------------------------------------------------------------------

cdef inline int _digit(const char *p, Py_ssize_t i):
    cdef char c = p[i]
    if c < 48 or c > 57:  # not '0'..'9'
        return -1
    return c - 48


cdef int _number(const char *p, Py_ssize_t start, Py_ssize_t n):
    """The decimal number in p[start:start+n], or -1 if a character is not a digit."""
    cdef int value = 0
    cdef int d
    cdef Py_ssize_t i
    for i in range(start, start + n):
        d = _digit(p, i)
        if d < 0:
            return -1
        value = value * 10 + d
    return value


cdef inline bint _maybe_iso_date(str s):
    # jsonutil.ISO8601_PAT fixes the separators' positions and bounds the
    # length (19 to 32, plus a newline that "$" accepts): anything failing
    # this cannot match it.
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    return (
        19 <= n <= 33
        and PyUnicode_READ_CHAR(s, 4) == u'-'
        and PyUnicode_READ_CHAR(s, 7) == u'-'
        and PyUnicode_READ_CHAR(s, 10) == u'T'
        and PyUnicode_READ_CHAR(s, 13) == u':'
        and PyUnicode_READ_CHAR(s, 16) == u':'
    )


cdef object _utc_stamp(str s):
    """The datetime of an ASCII ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` stamp, else None.

    Identical to what dateutil (and so jsonutil.parse_date) returns for it.
    """
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    cdef const char *p
    cdef int year, month, day, hour, minute, second, micro, digits
    if PyUnicode_IS_ASCII(s) and PyUnicode_READ_CHAR(s, n - 1) == u'Z' and (
        n == 20 or (22 <= n <= 27 and PyUnicode_READ_CHAR(s, 19) == u'.')
    ):
        p = PyUnicode_1BYTE_DATA(s)
        year = _number(p, 0, 4)
        month = _number(p, 5, 2)
        day = _number(p, 8, 2)
        hour = _number(p, 11, 2)
        minute = _number(p, 14, 2)
        second = _number(p, 17, 2)
        micro = 0
        if n > 20:
            digits = <int>(n - 21)
            micro = _number(p, 20, digits)
            while digits < 6 and micro >= 0:
                micro *= 10
                digits += 1
        if (year >= 0 and month >= 0 and day >= 0 and hour >= 0 and minute >= 0
                and second >= 0 and micro >= 0 and hour < 24):
            try:
                return datetime_new(year, month, day, hour, minute, second, micro, _DATEUTIL_UTC)
            except ValueError:
                pass  # out of range: the caller's parser raises its own error
    return None


cdef object _parse_date(str s):
    """jsonutil.parse_date for one string; ASCII ``...Z`` stamps parsed here."""
    if not _maybe_iso_date(s):
        return s
    cdef object dt = _utc_stamp(s)
    return _original_parse_date(s) if dt is None else dt


def parse_utc_stamp(s):
    """The datetime of an ASCII ``...Z`` ISO8601 stamp, as dateutil gives it; else None."""
    if type(s) is not str or not _maybe_iso_date(<str>s):
        return None
    return _utc_stamp(<str>s)


def parse_date(s):
    """Equivalent of jupyter_client.jsonutil.parse_date for a string."""
    if s is None:
        return s
    return _parse_date(s)


# Containers inside a header are handed to jupyter_client's own (Python)
# extract_dates: real headers are flat, and deep nesting then hits the
# RecursionError at (nearly) the depth jupyter_client always did, spending
# Python frames as it does. The C stack never grows.
cdef int _COMPILED_NESTING = 1


cdef object _extract_dates(object obj, int depth=0):
    cdef dict new
    cdef Py_ssize_t pos = 0
    cdef PyObject *key
    cdef PyObject *value
    if PyUnicode_CheckExact(obj):
        return _parse_date(<str>obj)
    if depth >= _COMPILED_NESTING:
        return _original_extract_dates(obj)
    if PyDict_CheckExact(obj):
        # a copy keeps the keys and their order; only values that change are set
        new = PyDict_Copy(obj)
        while PyDict_Next(obj, &pos, &key, &value):
            if PyUnicode_CheckExact(<object>value):
                if not _maybe_iso_date(<str>value):
                    continue
            elif not isinstance(<object>value, (dict, list, tuple, str)):
                continue
            new[<object>key] = _extract_dates(<object>value, depth + 1)
        return new
    if isinstance(obj, (list, tuple)):
        return [_extract_dates(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        new = {}
        for k, v in obj.items():
            new[k] = _extract_dates(v, depth + 1)
        return new
    if isinstance(obj, str):
        return _parse_date(<str>obj)
    return obj


def extract_dates(obj):
    """Equivalent of jupyter_client.jsonutil.extract_dates, with a compiled parser."""
    return _extract_dates(obj)


cdef object _utcnow():
    """datetime.now(timezone.utc), without the Python-level call."""
    cdef int64_t seconds, days, rem
    cdef int micro, year, month, day
    if not kw_utc_now(&seconds, &micro):
        import datetime as _dt
        return _dt.datetime.now(_UTC)
    days = seconds // 86400
    rem = seconds - days * 86400
    kw_civil_from_days(days, &year, &month, &day)
    return datetime_new(year, month, day, <int>(rem // 3600), <int>((rem // 60) % 60),
                        <int>(rem % 60), micro, _UTC)


def utcnow():
    """Timezone-aware UTC now, as jupyter_client.session.utcnow."""
    return _utcnow()


# ---------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------

cdef inline bint _is_delim(object item):
    if PyBytes_CheckExact(item):
        return PyBytes_GET_SIZE(item) == 9 and memcmp(PyBytes_AS_STRING(item), b"<IDS|MSG>", 9) == 0
    return item == _DELIM


cdef bint _frame_is_delim(object frame) except -1:
    cdef const unsigned char[::1] view
    if type(frame) in _frame_types:
        view = frame
        return view.shape[0] == 9 and memcmp(&view[0], b"<IDS|MSG>", 9) == 0
    return frame.bytes == _DELIM


cdef bytes _frame_bytes(object frame):
    cdef const unsigned char[::1] view
    if type(frame) in _frame_types:
        view = frame
        if view.shape[0] == 0:
            return b""
        return PyBytes_FromStringAndSize(<const char *>&view[0], view.shape[0])
    return bytes(frame.bytes)


def feed_identities(msg_list, copy=True):
    """Split routing identities from the rest of a message, as jupyter_client does."""
    cdef Py_ssize_t idx, n
    if copy:
        if not PyList_CheckExact(msg_list):
            idx = msg_list.index(_DELIM)
            return msg_list[:idx], msg_list[idx + 1:]
        n = PyList_GET_SIZE(msg_list)
        for idx in range(n):
            if _is_delim(<object>PyList_GET_ITEM(msg_list, idx)):
                return msg_list[:idx], msg_list[idx + 1:]
        raise ValueError(f"{_DELIM!r} is not in list")
    idx = 0
    for frame in msg_list:
        if _frame_is_delim(frame):
            return [_frame_bytes(m) for m in msg_list[:idx]], msg_list[idx + 1:]
        idx += 1
    raise ValueError("DELIM not in msg_list")


def as_buffers(frames):
    """Buffers of a received message as memoryviews (no copy of Frames)."""
    buffers = [memoryview(b) for b in frames]
    if buffers and buffers[0].shape is None:
        # pyzmq #646: an old Frame without a shape; copy, as jupyter_client does
        buffers = [memoryview(bytes(b.bytes)) for b in frames]
    return buffers


def check_buffers(buffers):
    """Buffers must support the buffer protocol and be contiguous (as jupyter_client checks)."""
    for idx, buf in enumerate(buffers):
        if type(buf) is memoryview:
            view = buf
        else:
            try:
                view = memoryview(buf)
            except TypeError as e:
                raise TypeError("Buffer objects must support the buffer protocol.") from e
        if not view.contiguous:
            raise ValueError("Buffer %i (%r) is not contiguous" % (idx, buf))


cpdef dict adapt(dict message):
    """jupyter_client.adapter.adapt, skipped when it would change nothing."""
    header = message["header"]
    cdef object version
    if PyDict_CheckExact(header) and "date" in <dict>header:
        version = (<dict>header).get("version")
        if PyUnicode_CheckExact(version) and PyUnicode_GET_LENGTH(version) >= 1 \
                and PyUnicode_READ_CHAR(version, 0) == u'5' \
                and (PyUnicode_GET_LENGTH(version) == 1 or PyUnicode_READ_CHAR(version, 1) == u'.'):
            return message
    return _adapt(message)


# ---------------------------------------------------------------------------
# the per-Session state
# ---------------------------------------------------------------------------

@cython.final
cdef class SessionCore:
    """Everything a Session's hot paths need, as C fields.

    kernelwire.Session keeps it in step with its traits (observers).  All
    methods run with the GIL held and never release it halfway through an
    update, so one core can be shared by threads: ids stay unique and the
    replay history consistent.
    """

    cdef public object username
    cdef public object metadata
    cdef public set digest_history
    cdef public Py_ssize_t digest_history_size
    cdef public bint debug
    cdef public bint check_pid
    cdef public long pid
    cdef public object adapt_version
    cdef public Py_ssize_t copy_threshold
    cdef object _session
    cdef str _id_prefix          # f"{session}_{pid}_", rebuilt when either changes
    cdef long _id_prefix_pid
    cdef unsigned long long _count
    cdef object _pack
    cdef object _unpack
    cdef bint _json_family       # the packer turns {} into b"{}"
    cdef bint _json_unpack       # the unpacker turns b"{}" into {}
    cdef bint _orjson_pack       # the packer is jupyter_client's orjson_packer
    cdef bint _orjson_unpack
    cdef object _auth
    cdef object _hmac            # the C-level HMAC inside hmac.HMAC, or None
    cdef object _hmac_copy       # its type's unbound copy / update / digest
    cdef object _hmac_update
    cdef object _hmac_digest
    cdef kw_hmac _fast           # keyed hash states for the compiled HMAC
    cdef bint _fast_ok

    def __cinit__(self):
        self._session = ""
        self._id_prefix = None
        self.username = ""
        self.metadata = {}
        self.digest_history = set()
        self.digest_history_size = 2 ** 16
        self.check_pid = True
        self.adapt_version = 0
        self.copy_threshold = 2 ** 16
        self._pack = jc_session.json_packer
        self._unpack = jc_session.json_unpacker

    # -- configuration -----------------------------------------------------

    @property
    def session(self):
        return self._session

    @session.setter
    def session(self, value):
        self._session = value
        self._id_prefix = None

    @property
    def pack(self):
        return self._pack

    @property
    def unpack(self):
        return self._unpack

    @property
    def auth(self):
        return self._auth

    def set_packers(self, pack, unpack):
        self._pack = pack
        self._unpack = unpack
        self._json_family = pack in json_family_packers
        self._json_unpack = unpack in json_family_unpackers
        self._orjson_pack = _orjson_dumps is not None and pack is orjson_fast_packer
        self._orjson_unpack = _orjson_loads is not None and unpack is _orjson_unpacker

    def set_auth(self, auth, key=None, digest_mod=None):
        """Sign with ``auth``; ``key`` and ``digest_mod`` enable the compiled HMAC.

        The compiled HMAC is used only after it produced the same digest as
        ``auth`` on a probe, so an auth object set by hand is never bypassed.
        """
        self._auth = auth
        self._hmac = None
        self._fast_ok = False
        if auth is None or type(auth) is not _HMAC:
            return
        if key is not None and digest_mod is not None:
            self._fast_ok = self._setup_fast_hmac(auth, key, digest_mod)
        inner = getattr(auth, "_hmac", None)
        if inner is None:
            return  # a digest OpenSSL does not do: hmac's generic path
        kind = type(inner)
        if not (hasattr(kind, "copy") and hasattr(kind, "update") and hasattr(kind, "digest")):
            return
        self._hmac = inner
        self._hmac_copy = kind.copy
        self._hmac_update = kind.update
        self._hmac_digest = kind.digest

    cdef bint _setup_fast_hmac(self, auth, key, digest_mod) except -1:
        cdef unsigned char digest[64]
        cdef kw_hash_state state
        try:
            name = digest_mod().name
        except Exception:
            return False
        if not isinstance(name, str) or not isinstance(key, bytes):
            return False
        cdef bytes library = _crypto_module_file.encode() if _crypto_module_file else None
        cdef bytes hash_name = name.encode()
        cdef const char *library_path = NULL
        if library is not None:
            library_path = library
        if not kw_hmac_lookup(&self._fast, hash_name, library_path):
            return False
        if not kw_hmac_set_key(&self._fast, key, len(key)):
            return False
        memcpy(&state, &self._fast.inner, sizeof(kw_hash_state))
        if not kw_hmac_absorb(&self._fast, &state, <const char *>_PROBE, len(_PROBE)):
            return False
        if not kw_hmac_finish(&self._fast, &state, digest):
            return False
        expected = auth.copy()
        expected.update(_PROBE)
        return expected.digest() == digest[:self._fast.digest_size]

    @property
    def compiled_hmac(self):
        """True when signing runs on the compiled HMAC (not hashlib objects)."""
        return self._fast_ok

    @property
    def message_count(self):
        """The number the next msg_id will carry."""
        return self._count

    @message_count.setter
    def message_count(self, value):
        self._count = value

    # -- headers -----------------------------------------------------------

    cpdef str msg_id(self):
        if self._id_prefix is None or self._id_prefix_pid != _pid:
            self._id_prefix = f"{self._session}_{_pid}_"
            self._id_prefix_pid = _pid
        n = self._count
        self._count += 1
        return self._id_prefix + str(n)

    cpdef dict msg_header(self, msg_type):
        return {
            "msg_id": self.msg_id(),
            "msg_type": msg_type,
            "username": self.username,
            "session": self._session,
            "date": _utcnow(),
            "version": _VERSION,
        }

    cpdef dict msg(self, msg_type, content=None, parent=None, header=None, metadata=None):
        if header is None:
            header = self.msg_header(msg_type)
        msg_id = header["msg_id"]
        msg_kind = header["msg_type"]
        if parent is None:
            parent_header = {}
        elif PyDict_CheckExact(parent) and PyDict_GetItem(parent, "header") is not NULL \
                and PyDict_CheckExact(<object>PyDict_GetItem(parent, "header")):
            parent_header = <object>PyDict_GetItem(parent, "header")
        else:
            parent_header = _extract_header(parent)
        if content is None:
            content = {}
        md = PyDict_Copy(self.metadata) if PyDict_CheckExact(self.metadata) else self.metadata.copy()
        if metadata is not None:
            md.update(metadata)
        return {
            "header": header,
            "msg_id": msg_id,
            "msg_type": msg_kind,
            "parent_header": parent_header,
            "content": content,
            "metadata": md,
        }

    # -- signing -----------------------------------------------------------

    cdef bint _fast_digest(self, parts, unsigned char *digest) except -1:
        """HMAC of the frames into ``digest`` with the compiled HMAC.

        Returns False (nothing done) unless every frame is exact bytes; the
        callers then take hashlib's path, which raises hashlib's own errors.
        """
        cdef kw_hash_state state
        cdef Py_ssize_t size
        cdef const char *data
        if not self._fast_ok or not PyList_CheckExact(parts):
            return False
        for p in parts:
            if not PyBytes_CheckExact(p):
                return False
        memcpy(&state, &self._fast.inner, sizeof(kw_hash_state))
        for p in parts:
            data = PyBytes_AS_STRING(p)
            size = PyBytes_GET_SIZE(p)
            if size >= _NOGIL_HASH_BYTES:
                with nogil:  # `p` is immutable and referenced: safe without the GIL
                    kw_hmac_absorb(&self._fast, &state, data, <size_t>size)
            else:
                kw_hmac_absorb(&self._fast, &state, data, <size_t>size)
        if not kw_hmac_finish(&self._fast, &state, digest):
            raise RuntimeError("HMAC computation failed")
        return True

    cdef bytes _raw_digest(self, parts):
        """The raw HMAC digest of the frames, through the C-level HMAC object."""
        h = self._hmac_copy(self._hmac)
        cdef bint all_bytes = PyList_CheckExact(parts)
        if all_bytes:
            for p in parts:
                if not PyBytes_CheckExact(p):
                    all_bytes = False
                    break
        if all_bytes:
            self._hmac_update(h, b"".join(parts))
        else:
            for p in parts:
                self._hmac_update(h, p)
        return self._hmac_digest(h)

    cpdef bytes sign(self, msg_list):
        cdef unsigned char digest[64]
        cdef bytes out
        cdef Py_ssize_t n
        if self._auth is None:
            return b""
        if self._fast_digest(msg_list, digest):
            n = <Py_ssize_t>self._fast.digest_size
            out = PyBytes_FromStringAndSize(NULL, 2 * n)
            kw_hexlify(digest, n, PyBytes_AS_STRING(out))
            return out
        if self._hmac is None:
            h = self._auth.copy()
            for m in msg_list:
                h.update(m)
            return h.hexdigest().encode()
        cdef bytes raw = self._raw_digest(msg_list)
        n = PyBytes_GET_SIZE(raw)
        out = PyBytes_FromStringAndSize(NULL, 2 * n)
        kw_hexlify(<const unsigned char *>PyBytes_AS_STRING(raw), n, PyBytes_AS_STRING(out))
        return out

    cdef bint _verify(self, signature, parts) except -1:
        """Constant-time check of a signature against the frames it claims to sign."""
        cdef unsigned char digest[64]
        if PyBytes_CheckExact(signature) and self._fast_digest(parts, digest):
            return self._digest_matches(signature, digest)
        return compare_digest(signature, self.sign(parts))

    cdef bint _digest_matches(self, bytes signature, const unsigned char *digest):
        """Does the hex signature spell the compiled HMAC's digest? Constant time."""
        cdef char hexed[128]
        cdef Py_ssize_t n = <Py_ssize_t>self._fast.digest_size
        # the length is public (the scheme fixes it): check it before comparing
        if PyBytes_GET_SIZE(signature) != 2 * n:
            return False
        kw_hexlify(digest, n, hexed)
        return kw_ct_equal(<const unsigned char *>PyBytes_AS_STRING(signature),
                           <const unsigned char *>hexed, 2 * n)

    # -- replay history ----------------------------------------------------

    cpdef add_digest(self, signature):
        if self.digest_history_size == 0:
            return
        PySet_Add(self.digest_history, signature)
        if PySet_GET_SIZE(self.digest_history) > self.digest_history_size:
            self.cull_digest_history()

    cpdef cull_digest_history(self):
        """Drop max(10%, excess) of the history, chosen at random, without sorting."""
        history = self.digest_history
        cdef Py_ssize_t current = len(history)
        cdef Py_ssize_t n_to_cull = max(current // 10, current - self.digest_history_size)
        if n_to_cull >= current:
            history.clear()
            return
        # a random window of the set's (hash-randomised) order: O(n), no sort
        start = random.randrange(current - n_to_cull + 1)
        victims = list(itertools.islice(history, start, start + n_to_cull))
        history.difference_update(victims)

    # -- packing -----------------------------------------------------------

    cdef object _pack_part(self, obj):
        if self._json_family and PyDict_CheckExact(obj) and PyDict_Size(obj) == 0:
            return _EMPTY
        cdef PyObject *args[3]
        if self._orjson_pack:
            # orjson.dumps(obj, default=json_default, option=...) as one vectorcall
            args[0] = <PyObject *>obj
            args[1] = <PyObject *>_json_default
            args[2] = <PyObject *>_orjson_option
            try:
                return PyObject_Vectorcall(_orjson_dumps, args, 1, _ORJSON_KWNAMES)
            except Exception:
                pass  # the packer's own fallback decides (and warns)
        return self._pack(obj)

    def pack_part(self, obj):
        return self._pack_part(obj)

    cdef object _unpack_part(self, data):
        if self._json_unpack and PyBytes_CheckExact(data) and PyBytes_GET_SIZE(data) == 2 \
                and memcmp(PyBytes_AS_STRING(data), b"{}", 2) == 0:
            return {}  # what either JSON unpacker makes of b"{}"
        if self._orjson_unpack:
            try:
                return _orjson_loads(data)
            except Exception:
                pass  # jupyter_client's fallback: the json module
        return self._unpack(data)

    cpdef list serialize(self, msg, ident=None):
        cdef PyObject *found
        if PyDict_CheckExact(msg):
            found = PyDict_GetItem(msg, "content")
            content = <object>found if found is not NULL else _EMPTY_CONTENT
        else:
            content = msg.get("content", {})
        if content is None or content is _EMPTY_CONTENT:
            content = self._pack_part({})
        elif isinstance(content, dict):
            content = self._pack_part(content)
        elif isinstance(content, bytes):
            pass  # already packed, as in a relayed message
        elif isinstance(content, str):
            content = content.encode("utf8")
        else:
            raise TypeError("Content incorrect type: %s" % type(content))
        cdef list real_message = [
            self._pack_part(msg["header"]),
            self._pack_part(msg["parent_header"]),
            self._pack_part(msg["metadata"]),
            content,
        ]
        cdef list to_send
        if isinstance(ident, list):
            to_send = list(ident)
        elif ident is not None:
            to_send = [ident]
        else:
            to_send = []
        to_send.append(_DELIM)
        to_send.append(self.sign(real_message))
        to_send.extend(real_message)
        return to_send

    def signed_prefix(self, msg_list, ident=None):
        """[idents..., DELIM, signature] for an already packed message (send_raw)."""
        cdef list to_send = []
        if isinstance(ident, bytes):
            ident = [ident]
        if ident is not None:
            to_send.extend(ident)
        to_send.append(_DELIM)
        to_send.append(self.sign(msg_list[0:4]))
        return to_send

    cdef bint _verify_frames(self, signature, msg_list) except -1:
        """_verify over msg_list[1:5], without building the slice when it can."""
        cdef unsigned char digest[64]
        cdef kw_hash_state state
        cdef Py_ssize_t i, stop
        if not (self._fast_ok and PyBytes_CheckExact(signature) and PyList_CheckExact(msg_list)):
            return self._verify(signature, msg_list[1:5])
        stop = min(PyList_GET_SIZE(msg_list), 5)
        for i in range(1, stop):
            if not PyBytes_CheckExact(<object>PyList_GET_ITEM(msg_list, i)) \
                    or PyBytes_GET_SIZE(<object>PyList_GET_ITEM(msg_list, i)) >= _NOGIL_HASH_BYTES:
                return self._verify(signature, msg_list[1:5])
        memcpy(&state, &self._fast.inner, sizeof(kw_hash_state))
        for i in range(1, stop):
            frame = <object>PyList_GET_ITEM(msg_list, i)
            kw_hmac_absorb(&self._fast, &state, PyBytes_AS_STRING(frame),
                           <size_t>PyBytes_GET_SIZE(frame))
        if not kw_hmac_finish(&self._fast, &state, digest):
            raise RuntimeError("HMAC computation failed")
        return self._digest_matches(signature, digest)

    cpdef dict deserialize(self, msg_list, bint content=True, bint copy=True):
        if not copy:
            # the first frames are small: take them as bytes, as jupyter_client does
            msg_list = [_frame_bytes(m) for m in msg_list[:_MIN_FRAMES]] + msg_list[_MIN_FRAMES:]
        if self._auth is not None:
            signature = msg_list[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if PySet_Contains(self.digest_history, signature):
                raise ValueError("Duplicate Signature: %r" % signature)
            if content:
                # only a real read is recorded; a peek must not poison the history
                self.add_digest(signature)
            if not self._verify_frames(signature, msg_list):
                raise ValueError("Invalid Signature: %r" % signature)
        cdef Py_ssize_t n_frames = len(msg_list)
        if not n_frames >= _MIN_FRAMES:
            raise TypeError("malformed message, must have at least %i elements" % _MIN_FRAMES)
        extract = _jc_session_dict["extract_dates"]  # ipyparallel replaces it: look up per call
        cdef bint fast_dates = extract is _original_extract_dates
        # evaluated in jupyter_client's order, so the same error surfaces first
        header = self._unpack_part(msg_list[1])
        header_out = _extract_dates(header) if fast_dates else extract(header)
        msg_id = header["msg_id"]
        msg_type = header["msg_type"]
        parent = self._unpack_part(msg_list[2])
        parent_out = _extract_dates(parent) if fast_dates else extract(parent)
        metadata = self._unpack_part(msg_list[3])
        body = self._unpack_part(msg_list[4]) if content else msg_list[4]
        buffers = as_buffers(msg_list[5:]) if n_frames > _MIN_FRAMES else []
        cdef dict message = {
            "header": header_out,
            "msg_id": msg_id,
            "msg_type": msg_type,
            "parent_header": parent_out,
            "metadata": metadata,
            "content": body,
            "buffers": buffers,
        }
        if self.debug:
            pprint.pprint(message)
        return adapt(message)


# ---------------------------------------------------------------------------
# Session methods without a Python frame
# ---------------------------------------------------------------------------
# kernelwire.Session installs these in place of its own thin Python wrappers
# (same signatures and behaviour; see session.py), saving a Python call per
# message on the hottest paths.

@cython.binding(True)
def session_msg(self, msg_type, content=None, parent=None, header=None, metadata=None):
    """Return the nested message dict."""
    return (<SessionCore?>self._kw).msg(msg_type, content, parent, header, metadata)


@cython.binding(True)
def session_msg_header(self, msg_type):
    """Create a header for a message type."""
    return (<SessionCore?>self._kw).msg_header(msg_type)


@cython.binding(True)
def session_sign(self, msg_list):
    """The hex HMAC of the packed frames, as bytes; b"" without a key."""
    return (<SessionCore?>self._kw).sign(msg_list)


@cython.binding(True)
def session_serialize(self, msg, ident=None):
    """Serialize a message: ``[idents..., DELIM, HMAC, header, parent, metadata, content]``."""
    return (<SessionCore?>self._kw).serialize(msg, ident)


@cython.binding(True)
def session_deserialize(self, msg_list, content=True, copy=True):
    """Verify and unpack ``[HMAC, header, parent, metadata, content, buffers...]``."""
    return (<SessionCore?>self._kw).deserialize(msg_list, content, copy)


@cython.binding(True)
def session_feed_identities(self, msg_list, copy=True):
    """Split the routing identities from the rest of the message."""
    return feed_identities(msg_list, copy)


# -- sending and receiving a whole message ---------------------------------------

cdef ZmqioCAPI *_zmqio_api = NULL
cdef object _compiled_zmqio = None  # the module, once loaded
cdef bint _zmqio_missing = False
cdef object _SyncSocket = _zmq.Socket
cdef object _Message = jc_session.Message
cdef object _DONE = jc_session.DONE
cdef int _NOBLOCK = _zmq.NOBLOCK
cdef int _EAGAIN = _zmq.EAGAIN
cdef object _ZMQError = _zmq.ZMQError


cdef ZmqioCAPI *_zmqio_capi(session) except? NULL:
    """kernelwire._zmqio's C entry points, if ``session``'s class runs on them."""
    global _zmqio_api, _compiled_zmqio, _zmqio_missing
    if _zmqio_api is NULL:
        if _zmqio_missing:
            return NULL
        try:
            _zmqio_api = import_zmqio()
        except ImportError:
            _zmqio_missing = True
            return NULL
        from kernelwire import _zmqio
        _compiled_zmqio = _zmqio
        register_frame_type(_zmqio.ReceivedFrame)
    if type(session)._zmqio_module is not _compiled_zmqio:
        return NULL  # a class pinned to the pure twin
    return _zmqio_api


@cython.binding(True)
def session_send(self, stream, msg_or_type, content=None, parent=None, ident=None,
                 buffers=None, track=False, header=None, metadata=None):
    """Build, sign and send a message; returns it with ``msg["tracker"]`` set.

    For a plain pyzmq socket everything (message, signature, every frame on
    the wire) happens in this one compiled call; anything else takes
    Session's Python path (``_send_generic``).
    """
    cdef SessionCore kw = <SessionCore?>self._kw
    cdef ZmqioCAPI *api = _zmqio_capi(self)
    cdef Py_ssize_t longest = 0
    cdef bint tracking = False
    if api is NULL or type(stream) is not _SyncSocket or not api.supports(stream):
        return self._send_generic(stream, msg_or_type, content, parent, ident,
                                  buffers, track, header, metadata)
    if isinstance(msg_or_type, (_Message, dict)):
        msg = msg_or_type
        buffers = buffers or msg.get("buffers", [])
    else:
        msg = kw.msg(msg_or_type, content, parent, header, metadata)
    if kw.check_pid and _pid != kw.pid:
        get_logger().warning("WARNING: attempted to send message from fork\n%s", msg)
        return None
    if buffers is None:
        buffers = []
    if buffers:
        check_buffers(buffers)
    if kw.adapt_version:
        msg = _adapt(msg, kw.adapt_version)
    cdef list to_send = kw.serialize(msg, ident)
    if buffers:
        to_send.extend(buffers)
        if track:
            # jupyter_client tracks only when the message goes zero-copy
            longest = max([len(f) for f in to_send])
            tracking = longest >= kw.copy_threshold
    tracker = api.send_frames(stream, to_send, kw.copy_threshold, tracking, 0)
    if kw.debug:
        pprint.pprint(msg)
        pprint.pprint(to_send)
        pprint.pprint(buffers)
    msg["tracker"] = tracker
    return msg


@cython.binding(True)
def session_recv(self, socket, mode=_zmq.NOBLOCK, content=True, copy=True):
    """Receive and unpack a message: ``(idents, msg)``, or ``(None, None)`` if none waits."""
    cdef ZmqioCAPI *api = _zmqio_capi(self)
    if api is NULL or type(socket) is not _SyncSocket or not api.supports(socket):
        return self._recv_generic(socket, mode, content, copy)
    try:
        msg_list = api.recv_frames(socket, mode, copy)
    except _ZMQError as e:
        if e.errno == _EAGAIN:
            return None, None
        raise
    idents, msg_list = feed_identities(msg_list, copy)
    if type(self).deserialize is session_deserialize:  # not overridden: skip a call
        return idents, (<SessionCore?>self._kw).deserialize(msg_list, content, copy)
    return idents, self.deserialize(msg_list, content=content, copy=copy)


SESSION_METHODS = {
    "send": session_send,
    "recv": session_recv,
    "msg": session_msg,
    "msg_header": session_msg_header,
    "sign": session_sign,
    "serialize": session_serialize,
    "deserialize": session_deserialize,
    "feed_identities": session_feed_identities,
}
