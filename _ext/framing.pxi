# Framing for the compiled core: find the <IDS|MSG> delimiter, take frames
# as bytes, skip adapt() for current-protocol messages.  Included by
# _ccore.pyx; the pure twin is the "frames" section of _pycore.py.

cdef bytes _DELIM = DELIM
cdef object _adapt = jc_session.adapt

# Frame types whose memory can be read directly (zmq.Frame, and the frames
# kernelwire's own receive path makes, registered by that module).
cdef set _frame_types = {_zmq.Frame}


def register_frame_type(cls):
    """Let deserialize read frames of ``cls`` through the buffer protocol."""
    _frame_types.add(cls)


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
