# cython: language_level=3
"""Send and receive whole multipart messages in one call on pyzmq's libzmq.

The compiled twin of ``kernelwire._pyzmqio`` (same names, same behaviour).
libzmq's C API is looked up at import in the library pyzmq loaded (see
zmqio_helper.h); where that fails (Windows, unusual builds)
``raw_path_available`` is False and every call goes through the socket's
own ``send_multipart`` / ``recv_multipart``.

Zero-copy frames are released without pyzmq's garbage-collector thread:
libzmq's free callback only queues them; the Python references are dropped
with the GIL, on the next send/recv or from a pending call.
"""

cimport cython
from cpython.buffer cimport PyBUF_ANY_CONTIGUOUS, PyBuffer_FillInfo, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from cpython.pycapsule cimport PyCapsule_New

from _zmqio cimport ZmqioCAPI

from libzmq cimport (
    kw_drain,
    kw_drain_if_needed,
    kw_free_callback,
    kw_msg_t,
    kw_node,
    kw_node_new,
    kw_nodes_created,
    kw_nodes_released,
    kw_shutdown,
    kw_track_decref,
    kw_track_done,
    kw_track_new,
    kw_track_state,
    kw_zmq,
    kw_zmq_load,
)

cdef extern from "Python.h":
    void PyBuffer_Release(Py_buffer *view)
    # declared here without cpython.exc's ``except -1``: Cython would jump
    # straight to the caller on a handler's exception, past the cleanup
    # (closing the unsent message) that the callers do first
    int PyErr_CheckSignals()

import atexit
import errno
import time

import zmq
from jupyter_client.session import DONE

IMPLEMENTATION = "cython"

cdef int SNDMORE = zmq.SNDMORE
cdef int DONTWAIT = zmq.DONTWAIT
cdef int EAGAIN = zmq.EAGAIN
cdef int EINTR = errno.EINTR
cdef int ETERM = zmq.ETERM
cdef int ENOTSOCK = zmq.ENOTSOCK

cdef enum:
    STACK_FRAMES = 16  # frames up to this many get their Py_buffers on the C stack

cdef object SyncSocket = zmq.Socket
cdef object PyzmqFrame = zmq.Frame
cdef object Again = zmq.Again
cdef object ContextTerminated = zmq.ContextTerminated
cdef object ZMQError = zmq.ZMQError


def _load() -> str | None:
    """Find libzmq in pyzmq's extension; the reason it failed, or None."""
    try:
        import zmq.backend.cython._zmq as pyzmq_ext

        path = pyzmq_ext.__file__.encode()
    except (ImportError, AttributeError, TypeError) as e:  # e.g. pyzmq's CFFI backend
        return f"pyzmq's Cython backend is not there ({e})"
    cdef const char *failure = kw_zmq_load(path)
    return None if failure == NULL else failure.decode()


unavailable_reason: str | None = _load()
raw_path_available: bool = unavailable_reason is None
cdef bint RAW = raw_path_available

if RAW:
    # stop scheduling pending calls before the interpreter goes away
    atexit.register(lambda: kw_shutdown())


cdef bint supports_c(object socket) noexcept:
    return RAW and type(socket) is SyncSocket


def supports(socket) -> bool:
    """True when send_frames/recv_frames take the raw C path for this socket."""
    return supports_c(socket)


def stats() -> tuple[int, int]:
    """(zero-copy frames handed to libzmq, frames released back), after a drain."""
    kw_drain()
    return kw_nodes_created, kw_nodes_released


cdef int raise_zmq_error(int err) except -1:
    """Raise what pyzmq raises for this errno (zmq.error._check_rc's mapping)."""
    if err == EAGAIN:
        raise Again(err)
    if err == ETERM:
        raise ContextTerminated(err)
    raise ZMQError(err)


cdef inline void *socket_handle(object socket) except NULL:
    """The libzmq socket; a closed pyzmq socket raises like pyzmq (ENOTSOCK)."""
    cdef size_t handle = socket.underlying
    if handle == 0:
        raise ZMQError(ENOTSOCK)
    return <void *>handle


# -- trackers ----------------------------------------------------------------


@cython.final
cdef class TrackState:
    """The C counter of frames libzmq still holds for one tracked send."""

    cdef kw_track_state *state

    def __cinit__(self):
        # every instance owns a counter, also one made from Python (a
        # tracker with no frames: done)
        self.state = kw_track_new()
        if self.state == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.state != NULL:
            kw_track_decref(self.state)

    def done(self) -> bool:
        kw_drain_if_needed()
        return kw_track_done(self.state)


class ZeroCopyTracker(zmq.MessageTracker):
    """A zmq.MessageTracker for frames sent by send_frames: done once libzmq
    released every zero-copy buffer of the message."""

    def __init__(self, state: TrackState) -> None:
        super().__init__()
        self._state = state

    @property
    def done(self) -> bool:
        return self._state.done()

    def wait(self, timeout: float = -1) -> None:
        """Wait until done, or raise zmq.NotDone after ``timeout`` seconds (<0: forever)."""
        deadline = None if timeout is False or timeout < 0 else time.monotonic() + timeout
        pause = 1e-5
        while not self._state.done():
            if deadline is not None and time.monotonic() >= deadline:
                raise zmq.NotDone
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)


# -- sending -----------------------------------------------------------------


cdef int transfer(kw_msg_t *msg, void *handle, int flags, bint receiving) except -1:
    """zmq_msg_send (or zmq_msg_recv) of msg, the one retry loop of this module.

    The first try never blocks and keeps the GIL; a blocking wait runs
    without it and, when a signal interrupts it (EINTR), runs the signal
    handlers (their exception propagates) before waiting again.  EAGAIN
    after a blocking wait is SNDTIMEO/RCVTIMEO expiry, and with DONTWAIT it
    is raised at once: both raise zmq.Again.  A message that could not be
    sent is closed here (a zero-copy frame's node is queued for release); a
    receiving msg stays the caller's to close.
    """
    cdef int (*call)(kw_msg_t *, void *, int) noexcept nogil
    cdef int rc
    cdef int err
    cdef bint waited = False  # EAGAIN after a blocking wait is the timeout's expiry
    call = kw_zmq.msg_recv if receiving else kw_zmq.msg_send
    rc = call(msg, handle, flags | DONTWAIT)
    while rc < 0:
        err = kw_zmq.errno_()
        if err == EINTR or (err == EAGAIN and not waited and not (flags & DONTWAIT)):
            if err == EINTR and PyErr_CheckSignals() < 0:
                if not receiving:
                    kw_zmq.msg_close(msg)
                return -1
            if receiving:
                kw_drain_if_needed()  # a long wait should not hold released buffers
            waited = True
            with nogil:
                rc = call(msg, handle, flags)
        else:
            if not receiving:
                kw_zmq.msg_close(msg)
            raise_zmq_error(err)
    return 0


cdef int send_zero_copy(void *handle, Py_buffer *view, kw_track_state *track, int flags) except -1:
    """Hand view's memory to libzmq; the node owns the view from here on."""
    cdef kw_msg_t msg
    cdef kw_node *node = kw_node_new(view, track)
    if node == NULL:
        raise MemoryError()
    if kw_zmq.msg_init_data(&msg, view.buf, <size_t>view.len, kw_free_callback, node) != 0:
        # cannot happen with a free function given, but never leak the view
        kw_free_callback(NULL, node)
        raise_zmq_error(kw_zmq.errno_())
    return transfer(&msg, handle, flags, False)


cdef int send_copy(void *handle, const void *buf, size_t size, int flags) except -1:
    """Copy a small frame into a libzmq message and send it (what zmq_send does)."""
    cdef kw_msg_t msg
    if kw_zmq.msg_init_size(&msg, size) != 0:
        raise_zmq_error(kw_zmq.errno_())
    if size:
        memcpy(kw_zmq.msg_data(&msg), buf, size)
    return transfer(&msg, handle, flags, False)


cdef bint has_pyzmq_frame(list frames):
    for frame in frames:
        if isinstance(frame, PyzmqFrame):
            return True
    return False


cdef object send_frames_c(object socket, list frames, Py_ssize_t copy_threshold, bint track,
                          int flags):
    """send_frames for callers in C (see _zmqio.pxd)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(frames)
    cdef Py_buffer stack_views[STACK_FRAMES]
    cdef Py_buffer *views = stack_views
    cdef Py_ssize_t i
    cdef Py_ssize_t acquired = 0
    cdef int frame_flags
    cdef void *handle
    cdef kw_track_state *track_state = NULL
    cdef TrackState tracker_state
    if not RAW or type(socket) is not SyncSocket or (track and has_pyzmq_frame(frames)):
        return fallback_send(socket, frames, copy_threshold, track, flags)
    if n == 0:
        raise ValueError("a message needs at least one frame")
    handle = socket_handle(socket)
    kw_drain_if_needed()
    if track:
        tracker_state = TrackState.__new__(TrackState)
        track_state = tracker_state.state
    if n > STACK_FRAMES:
        views = <Py_buffer *>malloc(n * sizeof(Py_buffer))
        if views == NULL:
            raise MemoryError()
    try:
        # every frame must be a buffer before the first one leaves
        for i in range(n):
            frame = <object>PyList_GET_ITEM(frames, i)
            try:
                PyObject_GetBuffer(frame, &views[i], PyBUF_ANY_CONTIGUOUS)
            except TypeError:
                rmsg = repr(frame)
                if len(rmsg) > 32:
                    rmsg = rmsg[:32] + "..."
                raise TypeError(f"Frame {i} ({rmsg}) does not support the buffer interface.")
            acquired += 1
        for i in range(n):
            frame_flags = flags | SNDMORE if i < n - 1 else flags
            if views[i].len >= copy_threshold and views[i].len > 0:  # empty: nothing to share
                send_zero_copy(handle, &views[i], track_state, frame_flags)
            else:
                send_copy(handle, views[i].buf, <size_t>views[i].len, frame_flags)
    finally:
        for i in range(acquired):
            PyBuffer_Release(&views[i])  # no-op for views moved into nodes
        if views != stack_views:
            free(views)
    if track:
        return ZeroCopyTracker(tracker_state)
    return DONE


def send_frames(socket, frames: list, copy_threshold: int, track: bool, flags: int = 0):
    """Send ``frames`` as one multipart message; returns the tracker.

    Frames of ``copy_threshold`` bytes or more go zero-copy, the others are
    copied.  Returns a zmq.MessageTracker when ``track`` (done once libzmq
    released the zero-copy frames), else jupyter_client's ``DONE``.
    """
    return send_frames_c(socket, frames, copy_threshold, track, flags)


cdef object fallback_send(object socket, list frames, Py_ssize_t copy_threshold, bint track,
                          int flags):
    """The socket's own send_multipart, as jupyter_client sends."""
    longest = max([memoryview(f).nbytes for f in frames])
    copy = longest < copy_threshold
    if track:
        return socket.send_multipart(frames, flags, copy=copy, track=True)
    socket.send_multipart(frames, flags, copy=copy)
    return DONE


# -- receiving ---------------------------------------------------------------


@cython.final
cdef class ReceivedFrame:
    """One received frame, its memory still libzmq's (no copy).

    Exposes the buffer protocol (writable, like zmq.Frame) and the parts of
    zmq.Frame jupyter_client uses: ``bytes``, ``buffer``, ``more``, len().
    """

    cdef kw_msg_t msg
    cdef bint live
    cdef object cached_bytes

    def __cinit__(self):
        # every instance holds an initialised message, also one made from
        # Python (an empty frame): libzmq aborts on an uninitialised one
        if not RAW:
            raise TypeError(f"no ReceivedFrame without libzmq's C API ({unavailable_reason})")
        kw_zmq.msg_init(&self.msg)
        self.live = True

    def __dealloc__(self):
        if self.live:
            kw_zmq.msg_close(&self.msg)

    def __len__(self):
        return kw_zmq.msg_size(&self.msg)

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, kw_zmq.msg_data(&self.msg),
                          <Py_ssize_t>kw_zmq.msg_size(&self.msg), 0, flags)

    @property
    def bytes(self) -> bytes:
        """A bytes copy of the frame (made once)."""
        if self.cached_bytes is None:
            self.cached_bytes = PyBytes_FromStringAndSize(
                <char *>kw_zmq.msg_data(&self.msg), <Py_ssize_t>kw_zmq.msg_size(&self.msg)
            )
        return self.cached_bytes

    @property
    def buffer(self) -> memoryview:
        """A memoryview of the frame's memory."""
        return memoryview(self)

    @property
    def more(self) -> bool:
        return kw_zmq.msg_more(&self.msg) != 0

    def __repr__(self):
        return f"<kernelwire ReceivedFrame: {len(self)} bytes>"


cdef list recv_frames_c(object socket, int flags, bint copy):
    """recv_frames for callers in C (see _zmqio.pxd)."""
    cdef void *handle
    cdef kw_msg_t msg
    cdef ReceivedFrame frame
    cdef bint more = True
    cdef list frames = []
    if not RAW or type(socket) is not SyncSocket:
        return socket.recv_multipart(flags, copy=copy)
    handle = socket_handle(socket)
    kw_drain_if_needed()
    if copy:
        while more:
            kw_zmq.msg_init(&msg)
            try:
                transfer(&msg, handle, flags, True)
                frames.append(PyBytes_FromStringAndSize(
                    <char *>kw_zmq.msg_data(&msg), <Py_ssize_t>kw_zmq.msg_size(&msg)))
                more = kw_zmq.msg_more(&msg)
            finally:
                kw_zmq.msg_close(&msg)
        return frames
    while more:
        frame = ReceivedFrame.__new__(ReceivedFrame)  # an empty message, initialised
        transfer(&frame.msg, handle, flags, True)
        more = kw_zmq.msg_more(&frame.msg)
        frames.append(frame)
    return frames


def recv_frames(socket, flags: int = 0, copy: bool = True) -> list:
    """Receive one whole multipart message: bytes, or ReceivedFrames when not ``copy``.

    Blocking receives release the GIL and stay interruptible; with NOBLOCK
    and nothing queued, or on RCVTIMEO expiry, zmq.Again is raised.
    """
    return recv_frames_c(socket, flags, copy)


cdef ZmqioCAPI c_api
c_api.send_frames = send_frames_c
c_api.recv_frames = recv_frames_c
c_api.supports = supports_c
#: send_frames_c / recv_frames_c for other compiled modules (see _zmqio.pxd)
C_API = PyCapsule_New(&c_api, b"kernelwire._zmqio.C_API", NULL)
