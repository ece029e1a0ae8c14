"""The pickler behind serialize_object: protocol 5, every large buffer out of band.

numpy arrays, memoryviews and objects whose reduction yields a PickleBuffer
reach ``buffer_callback`` at any depth; the callback keeps small ones inline
and makes each large one a frame (a view of the object: no copy). Functions
and interactively defined classes go through cloudpickle when it is
installed. Objects IPython Parallel's ``can_map`` knows (interactive
functions, ``dependent``, ``Reference`` and user-registered canners) keep
their IPython Parallel meaning: they are canned here and uncanned in the
receiver's namespace ``g``.
"""

from __future__ import annotations

import copyreg
import functools
import io
import pickle
import sys
from types import FunctionType
from typing import Any

from . import _serialize_wire as wire

_CELL_TYPE = type((lambda x: lambda: x)(0).__closure__[0])
# types serialized better here than by IPython Parallel's canners
_NOT_CANNED = frozenset({bytes, bytearray, memoryview, functools.partial, _CELL_TYPE})
_CONTAINERS = (list, tuple, set, dict)


class _OutOfBand:
    """An exact bytes or bytearray to send out of band.

    The C pickler writes exact bytes/bytearray inline without consulting any
    hook, so large ones are swapped for this box before pickling.
    """

    __slots__ = ("obj",)

    def __init__(self, obj: bytes | bytearray) -> None:
        self.obj = obj

    def __reduce_ex__(self, protocol):
        rebuild = wire.rebuild_bytes if type(self.obj) is bytes else wire.rebuild_bytearray
        return rebuild, (pickle.PickleBuffer(self.obj),)


class _Plain:
    """Pickles an object by its own reduction under another identity.

    Lets reducer_override wrap a CannedObject in ``uncan(...)`` without being
    asked about the same object again.
    """

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce_ex__(self, protocol):
        rv = self.obj.__reduce_ex__(protocol)
        if isinstance(rv, str):
            return rv
        func, args, *rest = rv
        if func is copyreg.__newobj__:
            # the pickler checks __newobj__'s class against the pickled object (this box)
            func, args = wire.new_object, (args[0], tuple(args[1:]))
        return (func, args, *rest)


def box_large_bytes(obj: Any, threshold: int, item_threshold: int) -> Any:
    """``obj`` with exact bytes/bytearray above ``threshold`` boxed for out-of-band sending.

    Walks exact lists, tuples, sets and dict values, at any depth, in
    containers of fewer than ``item_threshold`` items (IPython Parallel walks
    only one level); larger containers are left to the pickler.
    Unchanged containers are returned as they are.
    """
    t = type(obj)
    if t not in _CONTAINERS and t is not bytes and t is not bytearray:
        return obj  # the common case, without building the walk
    memo: dict[int, Any] = {}

    def walk(o: Any) -> Any:
        t = type(o)
        if t is bytes or t is bytearray:
            if len(o) <= threshold:
                return o
        elif t not in _CONTAINERS or len(o) >= item_threshold:
            return o
        key = id(o)
        if key in memo:
            return memo[key]
        memo[key] = o  # a container met again inside itself stays as it is
        if t is bytes or t is bytearray:
            new = _OutOfBand(o)
        elif t is dict:
            values = [walk(v) for v in o.values()]
            changed = any(n is not v for n, v in zip(values, o.values(), strict=True))
            new = dict(zip(o.keys(), values, strict=True)) if changed else o
        else:
            items = [walk(i) for i in o]
            changed = any(n is not i for n, i in zip(items, o, strict=True))
            new = t(items) if changed else o
        memo[key] = new
        return new

    return walk(obj)


def _frame_collector(threshold: int, frames: list) -> Any:
    def collect(buf: pickle.PickleBuffer) -> bool:
        """buffer_callback: False sends ``buf`` out of band, True keeps it inline."""
        raw = buf.raw()  # a flat byte view of the object: no copy
        if raw.nbytes <= threshold:
            return True
        frames.append(raw)
        return False

    return collect


@functools.cache
def _cloudpickle() -> Any:
    """cloudpickle, imported on first use (it is optional, and costs import time)."""
    try:
        import cloudpickle
    except ImportError:  # functions then pickle by reference only
        return None
    return cloudpickle


def cloudpickle_installed() -> bool:
    return _cloudpickle() is not None


def pickle_with_frames(obj: Any, threshold: int, item_threshold: int) -> tuple[bytes, list, bool]:
    """``(pickle, frames, plain)`` of ``obj``: every buffer above ``threshold`` a frame.

    ``plain`` is true when nothing was sent out of band and no reduction was
    overridden: the pickle is then what plain ``pickle.dumps`` would make of
    ``obj``, loadable without kernelwire.
    """
    frames: list = []
    file = io.BytesIO()
    pickler = _pickler_class()(file, threshold, frames)
    pickler.dump(box_large_bytes(obj, threshold, item_threshold))
    plain = not frames and not pickler.overridden
    pickler.clear_memo()  # drop the memo's references now, not at a later collection
    return file.getvalue(), frames, plain


@functools.cache
def _pickler_class() -> type:
    cloudpickle = _cloudpickle()
    base = cloudpickle.CloudPickler if cloudpickle is not None else pickle.Pickler
    return type("ObjectPickler", (_ObjectPicklerMixin, base), {"_cloudpickle": cloudpickle})


class _ObjectPicklerMixin:
    """Protocol-5 pickling appending each large buffer to ``frames`` instead of copying it."""

    _cloudpickle: Any = None

    def __init__(self, file: Any, threshold: int, frames: list) -> None:
        # The callback must not reference the pickler: a pickler in a reference
        # cycle is freed by the garbage collector, which can clear the memo's
        # PickleBuffers after their memoryviews and crash CPython (seen on 3.11).
        super().__init__(file, protocol=5, buffer_callback=_frame_collector(threshold, frames))
        self._threshold = threshold
        self._boxes: dict[int, _Plain] = {}
        self._can_map_imported = False
        self.overridden = False  # whether any reduction differed from plain pickle's
        # attributes of canned objects: pickled as they are (can_dependent keeps a
        # copy of the dependent itself, which must not be canned again)
        self._keep_as_is: dict[int, Any] = {}

    def reducer_override(self, obj: Any) -> Any:
        rv = self._reduce(obj)
        if rv is not NotImplemented:
            self.overridden = True
        return rv

    def _reduce(self, obj: Any) -> Any:
        t = type(obj)
        np = sys.modules.get("numpy")
        if np is not None and isinstance(obj, np.ndarray):
            return self._reduce_array(np, obj)
        if t is memoryview:
            return self._reduce_memoryview(obj)
        canning = sys.modules.get("ipyparallel.serialize.canning")
        if canning is not None:
            canned = self._can(canning, obj, t)
            if canned is not None:
                return wire.uncan, (canned,)
        if self._cloudpickle is not None:
            return super().reducer_override(obj)
        return NotImplemented

    def _reduce_array(self, np: Any, arr: Any) -> Any:
        if arr.dtype.hasobject or arr.nbytes <= self._threshold:
            return NotImplemented  # numpy's own reduction: items pickled one by one / inline
        if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
            # the one copy a strided array needs; numpy would copy it into the pickle instead
            arr = np.array(arr, order="C", subok=True, copy=True)
        if type(arr) is not np.ndarray:
            return arr.__reduce_ex__(5)  # subclasses keep their own reduction
        # numpy pickles datetime64/timedelta64 inline: a byte view sends every dtype as a frame
        order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
        raw = arr.ravel(order="K").view(np.uint8)  # no copy: arr is contiguous
        return wire.rebuild_array, (pickle.PickleBuffer(raw), arr.dtype, arr.shape, order)

    def _reduce_memoryview(self, view: memoryview) -> Any:
        source = view if view.c_contiguous else view.tobytes()  # strided: copied once
        return wire.rebuild_memoryview, (pickle.PickleBuffer(source), view.format, view.shape)

    def _can(self, canning: Any, obj: Any, t: type) -> _Plain | None:
        """Box for IPython Parallel's canned form of ``obj``, or None to pickle it normally."""
        if isinstance(obj, canning.CannedObject):
            return self._box(obj)
        if t in _NOT_CANNED or id(obj) in self._keep_as_is:
            return None
        can_map = canning.can_map
        if not self._can_map_imported:
            if any(isinstance(key, str) for key in can_map):
                canning._import_mapping(can_map, canning._original_can_map)
            self._can_map_imported = True
        canner = can_map.get(t)
        if canner is None:
            return None
        if t is FunctionType and _by_reference(obj):
            # importable functions (kernelwire's own rebuilders among them) pickle by
            # name; canning them would can the uncan named in their own reduction
            return None
        if self._cloudpickle is not None:
            if t is type:
                return None  # interactively defined classes: cloudpickle, by value
            if t is FunctionType and not (obj.__module__ or "__main__").startswith("__"):
                return None  # lambdas and closures of importable modules: cloudpickle
        canned = canner(obj)
        if canned is obj:
            return None
        for value in getattr(canned, "__dict__", {}).values():
            self._keep_as_is[id(value)] = value
        return self._box(canned)

    def _box(self, obj: Any) -> _Plain:
        box = self._boxes.get(id(obj))
        if box is None:
            box = self._boxes[id(obj)] = _Plain(obj)
        return box


def _by_reference(func: FunctionType) -> bool:
    """Whether pickle finds ``func`` again by module and qualified name (not ``__main__``)."""
    module_name = func.__module__
    if not module_name or module_name.startswith("__"):
        return False  # __main__ and interactive functions: canned, resolved in the namespace g
    target: Any = sys.modules.get(module_name)
    for part in func.__qualname__.split("."):
        target = getattr(target, part, None)
        if target is None:
            return False  # '<locals>', '<lambda>': not reachable by name
    return target is func
