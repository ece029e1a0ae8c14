# C-level entry points of kernelwire._zmqio, for other compiled modules
# (e.g. a fused serialize+sign+send in _ccore).  Same behaviour as the
# Python-level send_frames / recv_frames.

cdef object send_frames_c(object socket, list frames, Py_ssize_t copy_threshold, bint track, int flags)
cdef list recv_frames_c(object socket, int flags, bint copy)
