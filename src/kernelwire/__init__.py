"""kernelwire: a compiled, drop-in replacement for jupyter_client's Session."""

from ._core import implementation
from .install import install, uninstall
from .session import Session

__version__ = "0.1.0"

__all__ = ["Session", "implementation", "install", "uninstall", "__version__"]
