"""kernelwire: a compiled, drop-in replacement for jupyter_client's Session."""

from ._core import implementation
from .session import Session

__version__ = "0.1.0"

__all__ = ["Session", "implementation", "__version__"]
