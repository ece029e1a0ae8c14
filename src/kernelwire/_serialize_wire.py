"""Objects named inside kernelwire's object pickles: their import paths are wire format.

Everything here is referenced by module and name from pickles that other
processes load, so renaming or moving any of it breaks mixed-version clusters.

An item of a serialized object that holds large buffers (or needs canning)
below its top is pickled into an envelope: how many of the following frames
belong to it and, when small, its protocol-5 pickle inline. Loading the
envelope calls ``open_envelope``, which builds a subclass of IPython
Parallel's ``CannedObject`` whenever IPython Parallel is loaded: stock
``ipyparallel.serialize.deserialize_object`` then fills its ``buffers`` with
the following frames and calls ``get_object(g)``, so a process without
kernelwire's patches decodes kernelwire's messages.
"""

from __future__ import annotations

import contextvars
import importlib
import pickle
import sys
from typing import Any

FORMAT_VERSION = 1
_CANNING = "ipyparallel.serialize.canning"

# The namespace ``g`` of the deserialize call in progress: IPython Parallel's
# uncanning (interactive functions, Reference, dependent) resolves names in it.
current_namespace: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "kernelwire_namespace", default=None
)


def load(data: Any, frames: list, g: dict | None) -> Any:
    """Unpickle ``data`` with ``frames`` as its out-of-band buffers, uncanning in ``g``."""
    token = current_namespace.set(g)
    try:
        return pickle.loads(data, buffers=frames)
    finally:
        current_namespace.reset(token)


class Envelope:
    """One item's frames: how many follow frame 0 for it, and its pickle when inline."""

    def __init__(self, nframes: int, data: bytes | None) -> None:
        self.nframes = nframes
        self.data = data
        # IPython Parallel's _restore_buffers replaces every None with the next frame.
        self.buffers: list = [None] * nframes

    def __reduce__(self):
        return open_envelope, (FORMAT_VERSION, self.nframes, self.data)

    def get_object(self, g: dict | None = None) -> Any:
        frames = self.buffers
        if self.data is None:
            return load(frames[0], frames[1:], g)
        return load(self.data, frames, g)


_ipp_envelope_class: type | None = None


def _envelope_class() -> type:
    """Envelope, or its CannedObject subclass once IPython Parallel is loaded."""
    global _ipp_envelope_class
    canning = sys.modules.get(_CANNING)
    if canning is None:
        return Envelope
    if _ipp_envelope_class is None:
        # CannedObject.__init__ is not called: Envelope.__init__ sets all state.
        _ipp_envelope_class = type(
            "IPPEnvelope", (Envelope, canning.CannedObject), {"__module__": __name__}
        )
    return _ipp_envelope_class


def open_envelope(version: int, nframes: int, data: bytes | None) -> Envelope:
    if version != FORMAT_VERSION:
        raise ValueError(
            f"kernelwire object format {version} is not supported (need {FORMAT_VERSION})"
        )
    return _envelope_class()(nframes, data)


# -- rebuilding buffer-protocol objects sent out of band ----------------------


def rebuild_bytes(buf: Any) -> bytes:
    return buf if type(buf) is bytes else bytes(buf)


def rebuild_bytearray(buf: Any) -> bytearray:
    return buf if type(buf) is bytearray else bytearray(buf)


def rebuild_memoryview(buf: Any, fmt: str, shape: tuple) -> memoryview:
    view = memoryview(buf)
    if view.format == fmt and view.shape == shape:
        return view
    try:
        return view.cast("B").cast(fmt, shape)
    except (TypeError, ValueError):
        # formats memoryview.cast cannot express (e.g. structs) arrive as flat
        # bytes, as IPython Parallel delivers every memoryview
        return view.cast("B")


def rebuild_array(buf: Any, dtype: Any, shape: tuple, order: str) -> Any:
    """An ndarray viewing ``buf`` (a received frame): no copy."""
    import numpy

    return numpy.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def new_object(cls: type, args: tuple) -> Any:
    return cls.__new__(cls, *args)


def uncan(canned: Any) -> Any:
    """IPython Parallel's uncan of an object canned by its can_map, in the current namespace."""
    return importlib.import_module(_CANNING).uncan(canned, current_namespace.get())
