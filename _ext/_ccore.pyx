# cython: language_level=3, binding=True
"""The compiled core of kernelwire: the per-message work of a Session.

Same names, signatures and behaviour as the pure twin, ``kernelwire._pycore``
(read it first: it is the specification; tests/test_twin_contract.py holds
the two to one interface).  Each fast path here is guarded by an exact type
check, and anything unusual is handed to the very code jupyter_client runs,
so results, errors and warnings match it exactly.

This file holds the Session's state and the whole path of a send and of a
receive; the jobs they call are split by file, included below:

- ``dates.pxi``: header dates, parsed and stamped (clock_helper.h);
- ``framing.pxi``: the delimiter, frames as bytes, ``adapt``;
- ``signing.pxi``: the HMAC of one key (signing_helper.h);
- ``kernelwire._shared_steps``: the steps compiling gains nothing on.

A send: ``session_send`` -> ``SessionCore.msg`` -> ``SessionCore.serialize``
(pack each part, ``Signer.hexdigest``) -> ``kernelwire._zmqio``'s C
``send_frames`` (one call, every frame).  A receive: ``session_recv`` ->
``_zmqio``'s C ``recv_frames`` -> ``feed_identities`` ->
``SessionCore.deserialize`` (replay check, signature, unpack, dates,
``adapt``).  Any stream that is not a plain pyzmq socket on the compiled
``_zmqio`` takes the pure core's ``session_send`` / ``session_recv``.
"""

import hmac as _hmac_module
import pprint

import zmq as _zmq
from jupyter_client import jsonutil
from jupyter_client import session as jc_session
from traitlets.log import get_logger

from kernelwire import _process, _pycore
from kernelwire._shm import DESCRIPTOR_KEY as _SHM_DESCRIPTOR_KEY
from kernelwire._shm import incoming as _shm_incoming
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
from kernelwire._shared_steps import (
    as_buffers,
    check_buffers,
    cull_digest_history,
    pack_content,
    print_sent,
    routing_prefix,
    signature_matches,
    signed_prefix,
)

cimport cython
from _zmqio cimport ZmqioCAPI, import_zmqio
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.datetime cimport datetime_new, import_datetime
from cpython.dict cimport PyDict_CheckExact, PyDict_Copy, PyDict_GetItem, PyDict_Next, PyDict_Size
from cpython.list cimport PyList_CheckExact, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.set cimport PySet_Add, PySet_Contains, PySet_GET_SIZE
from cpython.unicode cimport PyUnicode_CheckExact
from libc.stdint cimport int64_t
from libc.string cimport memcmp

cdef extern from "Python.h":
    object PyObject_Vectorcall(object callable, PyObject **args, size_t nargsf, object kwnames)
    bint PyUnicode_IS_ASCII(object o)
    const char *PyUnicode_1BYTE_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    Py_UCS4 PyUnicode_READ_CHAR(object o, Py_ssize_t index)

import_datetime()

IMPLEMENTATION = "cython"

include "dates.pxi"
include "framing.pxi"
include "signing.pxi"

cdef object _extract_header = jc_session.extract_header
cdef dict _jc_session_dict = jc_session.__dict__
cdef dict _process_globals = _process.__dict__  # the one pid cache (see _process.py)
cdef object _json_default = jsonutil.json_default
cdef bytes _EMPTY = EMPTY_DICT_FRAME
cdef object _EMPTY_CONTENT = object()  # a message without "content" packs {}
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
    cdef Signer _signer          # None without a key; replaced whole on re-key
    cdef public object shm       # a _shm.SharedMemory when shared memory is on

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
        return None if self._signer is None else self._signer.auth

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
        self._signer = None if auth is None else Signer(auth, key, digest_mod)

    @property
    def compiled_hmac(self):
        """True when signing runs on the compiled HMAC (not hashlib objects)."""
        return self._signer is not None and self._signer.compiled

    @property
    def message_count(self):
        """The number the next msg_id will carry."""
        return self._count

    @message_count.setter
    def message_count(self, value):
        self._count = value

    # -- headers -----------------------------------------------------------

    cpdef str msg_id(self):
        cdef long pid = _process_globals["pid"]
        if self._id_prefix is None or self._id_prefix_pid != pid:
            self._id_prefix = f"{self._session}_{pid}_"
            self._id_prefix_pid = pid
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
        md = self.metadata
        md = PyDict_Copy(md) if PyDict_CheckExact(md) else md.copy()
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

    # -- signing and replay history ------------------------------------------

    cpdef bytes sign(self, msg_list):
        cdef Signer signer = self._signer  # our own reference: a re-key may replace it
        if signer is None:
            return b""
        return signer.hexdigest(msg_list)

    cpdef add_digest(self, signature):
        if self.digest_history_size == 0:
            return
        PySet_Add(self.digest_history, signature)
        if PySet_GET_SIZE(self.digest_history) > self.digest_history_size:
            self.cull_digest_history()

    def cull_digest_history(self):
        cull_digest_history(self.digest_history, self.digest_history_size)

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
        if content is _EMPTY_CONTENT:
            content = self._pack_part({})
        elif PyDict_CheckExact(content):
            content = self._pack_part(content)
        else:
            content = pack_content(content, self.pack_part)
        cdef list real_message = [
            self._pack_part(msg["header"]),
            self._pack_part(msg["parent_header"]),
            self._pack_part(msg["metadata"]),
            content,
        ]
        cdef list to_send
        if ident is None:  # the common case, without a call
            to_send = [_DELIM]
        else:
            to_send = routing_prefix(ident)
        to_send.append(self.sign(real_message))
        to_send.extend(real_message)
        return to_send

    cpdef dict deserialize(self, msg_list, bint content=True, bint copy=True):
        if not copy:
            # the first frames are small: take them as bytes, as jupyter_client does
            msg_list = [_frame_bytes(m) for m in msg_list[:_MIN_FRAMES]] + msg_list[_MIN_FRAMES:]
        cdef Signer signer = self._signer
        if signer is not None:
            signature = msg_list[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if PySet_Contains(self.digest_history, signature):
                raise ValueError("Duplicate Signature: %r" % signature)
            if content:
                # only a real read is recorded; a peek must not poison the history
                self.add_digest(signature)
            if not signature_matches(signature, signer.hexdigest(msg_list[1:5])):
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
        if self.shm is not None or _SHM_DESCRIPTOR_KEY in header:
            message = _shm_incoming(self.shm, message)
        if self.debug:
            pprint.pprint(message)
        return adapt(message)


# ---------------------------------------------------------------------------
# the Session's per-message methods (kernelwire.Session binds these)
# ---------------------------------------------------------------------------
# Functions of the Session itself, so a call costs no extra Python frame.


def session_msg(self, msg_type, content=None, parent=None, header=None, metadata=None):
    """Return the nested message dict."""
    return (<SessionCore?>self._kw).msg(msg_type, content, parent, header, metadata)


def session_msg_header(self, msg_type):
    """Create a header for a message type."""
    return (<SessionCore?>self._kw).msg_header(msg_type)


def session_sign(self, msg_list):
    """The hex HMAC of the packed frames, as bytes; b"" without a key."""
    return (<SessionCore?>self._kw).sign(msg_list)


def session_serialize(self, msg, ident=None):
    """Serialize a message: ``[idents..., DELIM, HMAC, header, parent, metadata, content]``."""
    return (<SessionCore?>self._kw).serialize(msg, ident)


def session_deserialize(self, msg_list, content=True, copy=True):
    """Verify and unpack ``[HMAC, header, parent, metadata, content, buffers...]``."""
    return (<SessionCore?>self._kw).deserialize(msg_list, content, copy)


def session_feed_identities(self, msg_list, copy=True):
    """Split the routing identities from the rest of the message."""
    return feed_identities(msg_list, copy)


# -- sending and receiving a whole message ---------------------------------------

cdef ZmqioCAPI *_zmqio_api = NULL
cdef object _compiled_zmqio = None  # the module, once loaded
cdef bint _zmqio_missing = False
cdef object _SyncSocket = _zmq.Socket
cdef object _Message = jc_session.Message
cdef int _EAGAIN = _zmq.EAGAIN
cdef object _ZMQError = _zmq.ZMQError


cdef ZmqioCAPI *_zmqio_capi(session, stream) except? NULL:
    """kernelwire._zmqio's C entry points, when they take ``stream`` for ``session``'s class."""
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
    if type(stream) is not _SyncSocket or type(session)._zmqio_module is not _compiled_zmqio:
        return NULL  # another kind of stream, or a class pinned to the pure I/O
    if not _zmqio_api.supports(stream):
        return NULL
    return _zmqio_api


def session_send(self, stream, msg_or_type, content=None, parent=None, ident=None,
                 buffers=None, track=False, header=None, metadata=None):
    """Build, sign and send a message; returns it with ``msg["tracker"]`` set.

    For a plain pyzmq socket everything (message, signature, every frame on
    the wire) happens in this one compiled call; anything else takes the
    pure core's ``session_send``.
    """
    cdef SessionCore kw = <SessionCore?>self._kw
    cdef ZmqioCAPI *api = _zmqio_capi(self, stream)
    cdef bint tracking = False
    if api is NULL:
        return _pycore.session_send(self, stream, msg_or_type, content, parent, ident,
                                    buffers, track, header, metadata)
    if isinstance(msg_or_type, (_Message, dict)):
        msg = msg_or_type
        buffers = buffers or msg.get("buffers", [])
    else:
        msg = kw.msg(msg_or_type, content, parent, header, metadata)
    if kw.check_pid and _process_globals["pid"] != kw.pid:
        get_logger().warning("WARNING: attempted to send message from fork\n%s", msg)
        return None
    if buffers is None:
        buffers = []
    if buffers:
        check_buffers(buffers)
    if kw.adapt_version:
        msg = _adapt(msg, kw.adapt_version)
    wire = msg
    if kw.shm is not None:  # big buffers go through shared memory, their frames empty
        wire, buffers = kw.shm.outgoing(msg, buffers, ident)
    cdef list to_send = kw.serialize(wire, ident)
    if buffers:
        to_send.extend(buffers)
        if track:
            # jupyter_client tracks only when the message goes zero-copy
            tracking = max([len(f) for f in to_send]) >= kw.copy_threshold
    tracker = api.send_frames(stream, to_send, kw.copy_threshold, tracking, 0)
    if kw.debug:
        print_sent(msg, to_send, buffers)
    msg["tracker"] = tracker
    return msg


def session_send_raw(self, stream, msg_list, flags=0, copy=True, ident=None):
    """Send an already packed ``[header, parent, metadata, content, buffers...]``."""
    cdef SessionCore kw = <SessionCore?>self._kw
    cdef ZmqioCAPI *api = _zmqio_capi(self, stream)
    if api is NULL:
        return _pycore.session_send_raw(self, stream, msg_list, flags, copy, ident)
    cdef list to_send = signed_prefix(kw.sign(msg_list[0:4]), ident)
    to_send.extend(msg_list)
    # copy=True copies every frame, as pyzmq would
    api.send_frames(stream, to_send, (1 << 62) if copy else kw.copy_threshold, False, flags)


def session_recv(self, socket, mode=_zmq.NOBLOCK, content=True, copy=True):
    """Receive and unpack a message: ``(idents, msg)``, or ``(None, None)`` if none waits."""
    cdef ZmqioCAPI *api = _zmqio_capi(self, socket)
    if api is NULL:
        return _pycore.session_recv(self, socket, mode, content, copy)
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
