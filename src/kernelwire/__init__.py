"""kernelwire: a compiled, drop-in replacement for jupyter_client's Session."""

from ._core import implementation
from .install import install, uninstall
from .serialize import (
    deserialize_object,
    pack_apply_message,
    serialize_object,
    unpack_apply_message,
)
from .session import Session

__version__ = "0.1.0"

__all__ = [
    "Session",
    "implementation",
    "install",
    "uninstall",
    "serialize_object",
    "deserialize_object",
    "pack_apply_message",
    "unpack_apply_message",
    "__version__",
]
