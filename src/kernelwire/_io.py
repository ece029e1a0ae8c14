"""Choose how whole messages go over zmq: the compiled ``_zmqio`` or its pure twin.

``KERNELWIRE_PURE=1`` at import forces the pure twin; a missing extension
falls back to it, exactly as for the core (see _core.load).  Both expose
the same names (see _pyzmqio).
"""

from __future__ import annotations

from types import ModuleType

from ._core import load

zmqio: ModuleType = load("_zmqio", "_pyzmqio", check=False)
