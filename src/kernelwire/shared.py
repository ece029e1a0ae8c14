"""Arrays in kernelwire shared memory: sent to local peers without a single copy.

A Session with ``shared_memory_threshold`` set copies a big buffer into
shared memory once, at send.  An array made here already lives there, so a
send only names it: no copy at the sender, none at the receivers, which map
the same pages.

What sharing means:

- receivers map it copy-on-write: their writes stay their own;
- the sender's writes after a send may show in the receivers' arrays
  (pages they have not written themselves show the segment as it is now),
  so treat a sent array as read-only until the receivers are done with it,
  or send ``a.copy()``;
- the segment goes when the array (every view of it) is gone and no
  Session still holds it for a receiver; receivers keep their mappings.

Linux only (``kernelwire.shared.supported()``).
"""

from __future__ import annotations

import typing as t
import weakref

from . import _shm

if t.TYPE_CHECKING:
    import numpy

__all__ = ["SharedMemoryError", "asarray", "empty", "is_shared", "supported", "sweep"]

SharedMemoryError = _shm.SharedMemoryError
supported = _shm.supported
sweep = _shm.sweep


def empty(shape: t.Any, dtype: t.Any = float, order: t.Literal["C", "F"] = "C") -> numpy.ndarray:
    """An uninitialised array in shared memory, like ``numpy.empty``.

    OSError (ENOSPC) when /dev/shm cannot hold it: the memory is reserved now.
    """
    import numpy

    dtype = numpy.dtype(dtype)
    count = int(numpy.prod(shape, dtype=numpy.int64)) if numpy.ndim(shape) else int(shape)
    nbytes = count * dtype.itemsize
    name, mapped = _shm.allocate(nbytes)
    flat = numpy.frombuffer(mapped, dtype=dtype, count=count)
    allocation = _shm.Allocation(name, flat.ctypes.data, nbytes)
    _shm._ALLOCATIONS[allocation.address] = allocation
    # the mmap lives as long as any array or view on it does
    weakref.finalize(mapped, allocation.array_gone)
    return flat.reshape(shape, order=order)


def asarray(a: t.Any, dtype: t.Any = None) -> numpy.ndarray:
    """``a`` itself if it already lives in shared memory, else a shared copy (one copy, now)."""
    import numpy

    array = numpy.asarray(a, dtype=dtype)
    if is_shared(array):
        return array
    order: t.Literal["C", "F"] = (
        "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    )
    out = empty(array.shape, array.dtype, order)
    out[...] = array
    return out


def is_shared(a: t.Any) -> bool:
    """Does ``a``'s memory lie in a kernelwire.shared allocation of this process?"""
    try:
        view = memoryview(a)
    except TypeError:
        return False
    return view.contiguous and _shm.locate(view) is not None
