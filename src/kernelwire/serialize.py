"""Zero-copy object serialization for Jupyter message buffers (IPython Parallel compatible).

``serialize_object`` pickles any object with pickle protocol 5 and sends
every buffer larger than ``buffer_threshold`` (numpy arrays of any dtype,
memoryviews, objects whose reduction yields a ``pickle.PickleBuffer``, at any
depth; exact bytes/bytearray inside containers of fewer than
``item_threshold`` items) as its own message frame, without copying it.
Strided arrays are copied once, into a contiguous frame. The receiver's
arrays are views of the received frames, writeable when the frames are.
Functions, lambdas, closures and interactively defined classes go through
cloudpickle when it is installed; IPython Parallel's canning keeps its
meaning (``interactive`` functions see the engine namespace ``g``,
``Reference``, ``dependent``, ``PrePickled``, user ``can_map`` entries).

The frames follow IPython Parallel's shape: ``[head, *frames]`` per object,
``[f..., info, args..., kwargs...]`` per apply message. The head is a tiny
pickle that stock ``ipyparallel.serialize.deserialize_object`` also decodes,
and ``deserialize_object`` hands anything it did not produce to IPython
Parallel's own, so mixed clusters keep working in both directions.

Security: ``deserialize_object`` and ``unpack_apply_message`` unpickle,
and unpickling runs arbitrary code chosen by the sender. Only pass them
buffers of a message whose HMAC signature verified (``Session.deserialize``
checks it when the session has a key), never unsigned or untrusted input.
"""

from __future__ import annotations

import io
import pickle
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._serialize_pickler import box_large_bytes, object_pickler
from ._serialize_wire import Envelope

__all__ = [
    "MAX_BYTES",
    "MAX_ITEMS",
    "deserialize_object",
    "pack_apply_message",
    "serialize_object",
    "unpack_apply_message",
]

# jupyter_client.session's defaults, which IPython Parallel uses
MAX_BYTES = 1024
MAX_ITEMS = 64
_INFO_PROTOCOL = pickle.DEFAULT_PROTOCOL
# up to this size the main pickle is copied into the head frame; zero-copy pays off above
# about this size (pyzmq's COPY_THRESHOLD), and fewer frames keep IPython Parallel's counts
INLINE_PICKLE_LIMIT = 65536


def _prepickled_frames(obj: Any) -> list | None:
    """Frames of an ipyparallel.serialize.PrePickled (already serialized), else None."""
    module = sys.modules.get("ipyparallel.serialize.serialize")
    if module is not None and isinstance(obj, module.PrePickled):
        return obj.buffers[:]
    return None


def serialize_object(
    obj: Any, buffer_threshold: int = MAX_BYTES, item_threshold: int = MAX_ITEMS
) -> list:
    """Serialize ``obj`` into a list of sendable frames, large buffers uncopied.

    Frame 0 is a small head (holding the main pickle unless that exceeds
    ``INLINE_PICKLE_LIMIT``, when it is frame 1); the others are views of
    ``obj``'s buffers: keep them unmodified until sent.
    """
    prepickled = _prepickled_frames(obj)
    if prepickled is not None:
        return prepickled
    frames: list = []
    file = io.BytesIO()
    pickler = object_pickler(file, buffer_threshold, frames)
    pickler.dump(box_large_bytes(obj, buffer_threshold, item_threshold))
    pickler.clear_memo()  # drop the memo's references now, not at a later collection
    data = file.getvalue()
    if len(data) > INLINE_PICKLE_LIMIT:
        # a large pickle (many small objects) travels as its own frame, not copied into the head
        return [pickle.dumps(Envelope(len(frames) + 1, None), 5), data, *frames]
    return [pickle.dumps(Envelope(len(frames), data), 5), *frames]


def _foreign_deserializer() -> Callable[..., tuple[Any, list]]:
    try:
        from .ipp_serialize import stock_deserialize_object
    except ImportError as e:
        raise ValueError("not kernelwire's object format, and ipyparallel is not installed") from e
    return stock_deserialize_object


def deserialize_object(buffers: Sequence[Any], g: dict | None = None) -> tuple[Any, list]:
    """Rebuild an object from frames of ``serialize_object`` (or of IPython Parallel's).

    Returns ``(obj, remaining_frames)``. Arrays in ``obj`` are views of the
    frames. ``g`` is the namespace IPython Parallel's uncanning uses.
    Unpickles, which runs sender-chosen code: verified messages only.
    """
    bufs = list(buffers)
    head = pickle.loads(bufs[0])
    if not isinstance(head, Envelope):
        return _foreign_deserializer()(bufs, g)
    end = 1 + head.nframes
    if len(bufs) < end:
        raise ValueError(f"object needs {head.nframes} frames after its head, got {len(bufs) - 1}")
    head.buffers = bufs[1:end]
    return head.get_object(g), bufs[end:]


def pack_apply_message(
    f: Any,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    buffer_threshold: int = MAX_BYTES,
    item_threshold: int = MAX_ITEMS,
) -> list:
    """Frames ``[f..., info, args..., kwargs...]`` of an apply request, as IPython Parallel's."""
    arg_bufs = [
        frame
        for arg in args
        for frame in serialize_object(arg, buffer_threshold, item_threshold)
    ]
    kw_keys = sorted(kwargs)
    kwarg_bufs = [
        frame
        for key in kw_keys
        for frame in serialize_object(kwargs[key], buffer_threshold, item_threshold)
    ]
    info = dict(nargs=len(args), narg_bufs=len(arg_bufs), kw_keys=kw_keys)
    msg = serialize_object(f, buffer_threshold, item_threshold)
    msg.append(pickle.dumps(info, _INFO_PROTOCOL))
    msg.extend(arg_bufs)
    msg.extend(kwarg_bufs)
    return msg


def unpack_apply_message(
    bufs: Sequence[Any], g: dict | None = None, copy: bool = True
) -> tuple[Any, tuple, dict[str, Any]]:
    """``(f, args, kwargs)`` from ``pack_apply_message`` frames; ``copy`` is accepted and unused."""
    bufs = list(bufs)
    if len(bufs) < 2:
        raise AssertionError("not enough buffers!")
    f, bufs = deserialize_object(bufs, g)
    info = pickle.loads(bufs.pop(0))
    arg_bufs, kwarg_bufs = bufs[: info["narg_bufs"]], bufs[info["narg_bufs"] :]
    args = []
    for _ in range(info["nargs"]):
        arg, arg_bufs = deserialize_object(arg_bufs, g)
        args.append(arg)
    if arg_bufs:
        raise AssertionError("Shouldn't be any arg bufs left over")
    kwargs = {}
    for key in info["kw_keys"]:
        kwargs[key], kwarg_bufs = deserialize_object(kwarg_bufs, g)
    if kwarg_bufs:
        raise AssertionError("Shouldn't be any kwarg bufs left over")
    return f, tuple(args), kwargs
