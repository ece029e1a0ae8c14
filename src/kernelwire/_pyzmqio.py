"""Send and receive whole multipart messages through pyzmq: the pure twin of ``_zmqio``.

Same names and behaviour as the compiled module, built on the socket's own
``send_multipart`` / ``recv_multipart`` (pyzmq's zero-copy and its
garbage-collector thread).  Used when the extension is missing or
``KERNELWIRE_PURE=1`` is set.
"""

from __future__ import annotations

import typing as t

import zmq
from jupyter_client.session import DONE

IMPLEMENTATION = "pure"

#: no raw libzmq calls here: everything goes through pyzmq
raw_path_available: bool = False
unavailable_reason: str | None = "pure-Python implementation"


def supports(socket: t.Any) -> bool:
    """True for the sockets send_frames/recv_frames are meant for: exact pyzmq sync sockets."""
    return type(socket) is zmq.Socket


def send_frames(
    socket: t.Any, frames: list, copy_threshold: int, track: bool, flags: int = 0
) -> zmq.MessageTracker:
    """Send ``frames`` as one multipart message; returns the tracker.

    pyzmq applies one copy mode to a whole message: copy when every frame is
    below ``copy_threshold`` bytes, else zero-copy.  Returns pyzmq's tracker
    when ``track``, else jupyter_client's ``DONE``.
    """
    longest = max([memoryview(f).nbytes for f in frames])
    copy = longest < copy_threshold
    if track:
        return socket.send_multipart(frames, flags, copy=copy, track=True)
    socket.send_multipart(frames, flags, copy=copy)
    return DONE


def recv_frames(socket: t.Any, flags: int = 0, copy: bool = True) -> list:
    """Receive one whole multipart message: bytes, or zmq.Frames when not ``copy``."""
    return socket.recv_multipart(flags, copy=copy)
