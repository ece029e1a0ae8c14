"""Choose the core: the compiled extension, or its pure-Python twin.

``KERNELWIRE_PURE=1`` at import forces the pure core; a missing extension
falls back to it.  Both expose the same names (see _pycore).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from . import _pycore


def select(compiled: str, pure: ModuleType) -> ModuleType:
    """The compiled module ``kernelwire.<compiled>``, or ``pure`` when forced or missing."""
    if os.environ.get("KERNELWIRE_PURE", "") not in ("", "0"):
        return pure
    try:
        return importlib.import_module(f"kernelwire.{compiled}")
    except ImportError:
        return pure


core: ModuleType = select("_ccore", _pycore)
implementation: str = core.IMPLEMENTATION
