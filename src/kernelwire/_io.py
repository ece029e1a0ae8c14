"""Choose how whole messages go over zmq: the compiled ``_zmqio`` or its pure twin.

``KERNELWIRE_PURE=1`` at import forces the pure twin; a missing extension
falls back to it.  Both expose the same names (see _pyzmqio).
"""

from __future__ import annotations

import os
from types import ModuleType

from . import _pyzmqio


def _select() -> ModuleType:
    if os.environ.get("KERNELWIRE_PURE", "") not in ("", "0"):
        return _pyzmqio
    try:
        from . import _zmqio
    except ImportError:
        return _pyzmqio
    return _zmqio


zmqio: ModuleType = _select()
