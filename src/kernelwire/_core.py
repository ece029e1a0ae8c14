"""Choose the core: the compiled extension, or its pure-Python twin.

``KERNELWIRE_PURE=1`` at import forces the pure core; a missing extension
falls back to it.  Both expose the same names (see _pycore).
"""

from __future__ import annotations

import os
from types import ModuleType

from . import _pycore


def _select() -> ModuleType:
    if os.environ.get("KERNELWIRE_PURE", "") not in ("", "0"):
        return _pycore
    try:
        from . import _ccore
    except ImportError:
        return _pycore
    return _ccore


core: ModuleType = _select()
implementation: str = core.IMPLEMENTATION
