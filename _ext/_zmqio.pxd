# C-level entry points of kernelwire._zmqio for other compiled modules (e.g.
# a fused serialize+sign+send in _ccore), with the same behaviour as the
# Python-level send_frames / recv_frames.
#
# They travel as function pointers in a capsule: cimporting this file from
# any module (whatever its package) creates no import-time link, and
#     cdef ZmqioCAPI *zmqio = import_zmqio()
#     zmqio.send_frames(socket, frames, copy_threshold, track, flags)
# raises ImportError where the extension is missing.

from cpython.pycapsule cimport PyCapsule_GetPointer

ctypedef object (*send_frames_fn)(object socket, list frames, Py_ssize_t copy_threshold,
                                  bint track, int flags)
ctypedef list (*recv_frames_fn)(object socket, int flags, bint copy)
ctypedef bint (*supports_fn)(object socket) noexcept

ctypedef struct ZmqioCAPI:
    send_frames_fn send_frames  # falls back to socket.send_multipart by itself
    recv_frames_fn recv_frames  # falls back to socket.recv_multipart by itself
    supports_fn supports        # True when the raw C path takes this socket

cdef inline ZmqioCAPI *import_zmqio() except NULL:
    from kernelwire import _zmqio

    return <ZmqioCAPI *>PyCapsule_GetPointer(_zmqio.C_API, b"kernelwire._zmqio.C_API")
