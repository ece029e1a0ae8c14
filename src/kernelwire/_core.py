"""Choose the core: the compiled ``_ccore``, or its pure-Python twin ``_pycore``.

``KERNELWIRE_PURE=1`` at import forces the pure core; a missing extension
falls back to it.  Either way the module must export every name of
``INTERFACE`` (a core missing one fails here, at import), as msgpack picks
its compiled module or its fallback whole.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: what each core exports: the per-Session state, the Session's per-message
#: methods (whole send and receive included), and the helpers they share
INTERFACE = (
    "IMPLEMENTATION",
    "SessionCore",
    "session_msg",
    "session_msg_header",
    "session_sign",
    "session_serialize",
    "session_deserialize",
    "session_feed_identities",
    "session_send",
    "session_send_raw",
    "session_recv",
    "feed_identities",
    "register_frame_type",
    "adapt",
    "parse_date",
    "parse_utc_stamp",
    "extract_dates",
)


def _checked(module: ModuleType) -> ModuleType:
    missing = [name for name in INTERFACE if not hasattr(module, name)]
    if missing:
        raise ImportError(f"{module.__name__} lacks {', '.join(missing)}")
    return module


def forced_pure() -> bool:
    """``KERNELWIRE_PURE`` is set (to anything but ``0``)."""
    return os.environ.get("KERNELWIRE_PURE", "") not in ("", "0")


def load(compiled: str, pure: str, *, check: bool = True) -> ModuleType:
    """``kernelwire.<compiled>``, or ``kernelwire.<pure>`` when forced or missing."""
    if not forced_pure():
        try:
            module = importlib.import_module(f"kernelwire.{compiled}")
        except ImportError:
            pass
        else:
            return _checked(module) if check else module
    module = importlib.import_module(f"kernelwire.{pure}")
    return _checked(module) if check else module


def named(implementation: str, compiled: str, pure: str, *, check: bool = True) -> ModuleType:
    """The module of one implementation, ``"cython"`` or ``"pure"``, by name."""
    if implementation == "pure":
        module = importlib.import_module(f"kernelwire.{pure}")
    elif implementation == "cython":
        module = importlib.import_module(f"kernelwire.{compiled}")
    else:
        raise ValueError(f"an implementation is 'cython' or 'pure', not {implementation!r}")
    return _checked(module) if check else module


core: ModuleType = load("_ccore", "_pycore")
implementation: str = core.IMPLEMENTATION
