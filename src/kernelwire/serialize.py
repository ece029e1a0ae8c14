"""Zero-copy object serialization for Jupyter message buffers (IPython Parallel compatible).

``serialize_object`` pickles any object with pickle protocol 5 and sends
every buffer larger than ``buffer_threshold`` (numpy arrays of any dtype,
memoryviews, objects whose reduction yields a ``pickle.PickleBuffer``, at any
depth; exact bytes/bytearray inside containers of fewer than
``item_threshold`` items) as its own message frame, without copying it.
Strided arrays are copied once, into a contiguous frame. The receiver's
arrays are views of the received frames, writeable when the frames are.
Nested functions, lambdas, closures and interactively defined classes go
through cloudpickle when it is installed; IPython Parallel's canning keeps its
meaning (``interactive`` functions see the engine namespace ``g``,
``Reference``, ``dependent``, ``PrePickled``, user ``can_map`` entries).

The frames follow IPython Parallel's layout exactly: frame 0 is a pickle of
the object, or of the list/tuple/dict of its items, each item canned as
IPython Parallel cans it (``CannedArray``, ``CannedBytes``,
``CannedFunction``, ``CannedClass``, ...) and followed by its large buffers
as frames. An item that holds large buffers deeper down, or needs canning
deeper down, is an ``Envelope``: a ``CannedObject`` holding the item's
protocol-5 pickle, with its buffers as frames too. So where IPython Parallel
can send an object the frames are byte for byte its own (decodable where
kernelwire is not installed), ``deserialize_object`` decodes IPython
Parallel's frames, and stock ``ipyparallel.serialize.deserialize_object``
decodes kernelwire's (envelopes need kernelwire importable). Without
cloudpickle, functions, lambdas, closures and interactively defined classes
are canned as IPython Parallel cans them, at any depth.

Security: ``deserialize_object`` and ``unpack_apply_message`` unpickle,
and unpickling runs arbitrary code chosen by the sender. Only pass them
buffers of a message whose HMAC signature verified (``Session.deserialize``
checks it when the session has a key), never unsigned or untrusted input.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Sequence
from types import BuiltinFunctionType, FunctionType
from typing import Any

from ._serialize_pickler import cloudpickle_installed, pickle_with_frames
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
# IPython Parallel's protocol for frame 0 and the apply info: same bytes where the layout matches
_PROTOCOL = pickle.DEFAULT_PROTOCOL
_INFO_PROTOCOL = pickle.DEFAULT_PROTOCOL
# up to this size an item's pickle is copied into frame 0; zero-copy pays off above
# about this size (pyzmq's COPY_THRESHOLD), and fewer frames keep IPython Parallel's counts
INLINE_PICKLE_LIMIT = 65536
_CANNING = "ipyparallel.serialize.canning"
_SEQUENCES = (list, tuple, set)
# pickled as they are, by IPython Parallel and here alike (builtins by name)
_SCALARS = frozenset({int, float, complex, str, bool, type(None), range, BuiltinFunctionType})


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

    Frame 0 is what IPython Parallel's frame 0 is: a pickle of the object, or
    of the list/tuple/dict of its items (fewer than ``item_threshold``), each
    item canned as IPython Parallel cans it (``CannedArray``, ``CannedBytes``,
    ``CannedFunction``, ...), left as it is, or, where an item holds large
    buffers or needs canning deeper down, an ``Envelope`` (a ``CannedObject``)
    holding its protocol-5 pickle. The other frames are views of ``obj``'s
    buffers, in item order: keep them unmodified until sent.
    """
    prepickled = _prepickled_frames(obj)
    if prepickled is not None:
        return prepickled
    layout = _Layout(buffer_threshold, item_threshold)
    try:
        return layout.frames(obj)
    except (TypeError, pickle.PicklingError, AttributeError):
        # IPython Parallel's canned form holds something plain pickle refuses (e.g. a
        # closure over a large array); those items travel in envelopes instead
        layout = _Layout(buffer_threshold, item_threshold, stock_canners=False)
        return layout.frames(obj)


class _Layout:
    """One serialize_object call: frame 0's structure and the buffers that follow."""

    def __init__(self, threshold: int, item_threshold: int, stock_canners: bool = True) -> None:
        self.threshold = threshold
        self.item_threshold = item_threshold
        self.canning = sys.modules.get(_CANNING)
        self.stock_canners = stock_canners and self.canning is not None
        self.buffers: list = []

    def frames(self, obj: Any) -> list:
        t = type(obj)
        n = min(self.item_threshold, MAX_ITEMS)  # IPython Parallel decodes up to MAX_ITEMS
        if t in _SEQUENCES and t is not set and len(obj) < n:
            head: Any = t([self.item(i) for i in obj])
        elif t is dict and len(obj) < n and _sortable(obj):
            # IPython Parallel pairs keys with buffers in sorted order
            head = {k: self.item(obj[k]) for k in sorted(obj)}
        else:
            head = self.item(obj, whole=True)
            if type(head) is _Pickled:
                return [head.data]  # a plain object: its pickle is frame 0 as it is
        return [pickle.dumps(head, _PROTOCOL), *self.buffers]

    def item(self, x: Any, whole: bool = False) -> Any:
        """``x`` as it goes into frame 0; its large buffers appended to ``self.buffers``."""
        t = type(x)
        if t in _SCALARS:
            return x
        if self.canning is not None:
            canned = self._stock_canned(x, t)
            if canned is not None:
                self._extract(canned)
                return canned
        if t in _SEQUENCES or t is dict:
            values = x.values() if t is dict else x
            if len(x) < self.item_threshold and all(type(v) in _SCALARS for v in values):
                if not whole or t is not dict or _sortable(x):
                    return _Pickled(pickle.dumps(x, _PROTOCOL)) if whole else x  # flat, plain
        data, frames, plain = pickle_with_frames(x, self.threshold, self.item_threshold)
        if plain and not (whole and t is dict and len(x) < MAX_ITEMS and not _sortable(x)):
            # nothing IPython Parallel's own pickle would do differently (a dict whose keys
            # do not sort goes in an envelope: IPython Parallel's decoder sorts them)
            return _Pickled(data) if whole else x
        if len(data) > INLINE_PICKLE_LIMIT:
            # a large pickle (many small objects) travels as its own frame, not copied
            self.buffers.append(data)
            self.buffers.extend(frames)
            return Envelope(len(frames) + 1, None)
        self.buffers.extend(frames)
        return Envelope(len(frames), data)

    def _stock_canned(self, x: Any, t: type) -> Any:
        """IPython Parallel's canned form of ``x`` where it has one kernelwire keeps, else None."""
        canning = self.canning
        if isinstance(x, canning.CannedObject):
            return x  # Reference and friends: IPython Parallel uncans them itself
        canner = _canner(canning, t)
        if canner is None:
            return None
        if canner is canning.CannedArray:
            return _canned_array(canner, x)
        if canner is canning.CannedMemoryView:
            return canner(x) if x.c_contiguous and x.format == "B" and x.ndim == 1 else None
        if canner is canning.CannedBytes:
            return canner(x)
        if not self.stock_canners or (t is FunctionType and _cloudpickle_sends(x)):
            return None
        canned = canner(x)
        return None if canned is x else canned

    def _extract(self, canned: Any) -> None:
        """IPython Parallel's buffer extraction: large ones become frames, the rest bytes."""
        buffers = getattr(canned, "buffers", None)
        if not buffers:
            return
        for i, buf in enumerate(buffers):
            nbytes = buf.nbytes if isinstance(buf, memoryview) else len(buf)
            if nbytes > self.threshold:
                buffers[i] = None
                self.buffers.append(buf)
            elif isinstance(buf, memoryview):
                buffers[i] = buf.tobytes()


class _Pickled:
    """A whole plain object's pickle, already made: it becomes frame 0."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _cloudpickle_sends(func: FunctionType) -> bool:
    """Whether cloudpickle, when installed, sends ``func`` (as it did before canning existed).

    Functions of importable modules: by name, or by value where they are
    lambdas or closures. Interactive (``__main__``) ones keep IPython
    Parallel's canning, which resolves their globals in the engine namespace.
    """
    return not (func.__module__ or "__main__").startswith("__") and cloudpickle_installed()


def _sortable(d: dict) -> bool:
    try:
        sorted(d)
    except TypeError:
        return False
    return True


_can_map_seen: tuple[int, int] | None = None  # (id, size) of a can_map without string keys


def _canner(canning: Any, t: type) -> Any:
    """``can_map``'s canner for exactly type ``t``, its string keys imported first."""
    global _can_map_seen
    can_map = canning.can_map
    if _can_map_seen != (id(can_map), len(can_map)):
        # someone registered a canner by name (as ipyparallel itself does for numpy)
        if any(isinstance(key, str) for key in can_map):
            canning._import_mapping(can_map, canning._original_can_map)
        _can_map_seen = (id(can_map), len(can_map))
    return can_map.get(t)


def _canned_array(canned_array: type, arr: Any) -> Any:
    """IPython Parallel's CannedArray where it sends ``arr`` as one flat view, else None.

    Strided, F-ordered, datetime and object arrays go in envelopes instead, which
    keep their order and dtype without a copy (object arrays item by item).
    """
    dtype = arr.dtype
    if not arr.flags.c_contiguous or dtype.hasobject or dtype.kind in "mM":
        return None
    try:
        return canned_array(arr)
    except (TypeError, ValueError, BufferError):  # dtypes the buffer protocol cannot express
        return None


def deserialize_object(buffers: Sequence[Any], g: dict | None = None) -> tuple[Any, list]:
    """Rebuild an object from frames of ``serialize_object`` (or of IPython Parallel's).

    Returns ``(obj, remaining_frames)``. Arrays in ``obj`` are views of the
    frames. ``g`` is the namespace IPython Parallel's uncanning uses.
    Unpickles, which runs sender-chosen code: verified messages only.
    """
    bufs = list(buffers)
    if not bufs:
        raise ValueError("no frames to deserialize")
    head = pickle.loads(bufs[0])
    pos = 1
    t = type(head)
    if t in _SEQUENCES and len(head) < MAX_ITEMS:
        for c in head:
            pos = _restore_buffers(c, bufs, pos)
        obj: Any = t([_uncan(c, g) for c in head])
    elif t is dict and len(head) < MAX_ITEMS:
        obj = {}
        for k in sorted(head):
            c = head[k]
            pos = _restore_buffers(c, bufs, pos)
            obj[k] = _uncan(c, g)
    else:
        pos = _restore_buffers(head, bufs, pos)
        obj = _uncan(head, g)
    return obj, bufs[pos:]


def _restore_buffers(canned: Any, bufs: list, pos: int) -> int:
    """Fill ``canned``'s missing buffers (None) from ``bufs[pos:]``; the new position."""
    buffers = getattr(canned, "buffers", None)
    if not buffers or not isinstance(buffers, list) or not _is_canned(canned):
        return pos
    for i, buf in enumerate(buffers):
        if buf is None:
            if pos >= len(bufs):
                missing = sum(b is None for b in buffers[i:])
                raise ValueError(
                    f"object needs {missing} more frames after its head, got {len(bufs) - pos}"
                )
            buffers[i] = bufs[pos]
            pos += 1
    return pos


def _is_canned(obj: Any) -> bool:
    if isinstance(obj, Envelope):
        return True
    canning = sys.modules.get(_CANNING)
    return canning is not None and isinstance(obj, canning.CannedObject)


def _uncan(canned: Any, g: dict | None) -> Any:
    if type(canned) in _SCALARS:
        return canned
    if isinstance(canned, Envelope):
        return canned.get_object(g)
    canning = sys.modules.get(_CANNING)
    return canned if canning is None else canning.uncan(canned, g)


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
