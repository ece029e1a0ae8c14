"""Interpreter start-up hook behind ``KERNELWIRE_INSTALL=1``.

``kernelwire-startup.pth`` (installed into site-packages) imports this module
only when the variable is set, so every Python process that inherits it (a
kernel a launcher spawns, an ipyparallel controller, engine or nanny) runs
on kernelwire.  Importing kernelwire at start-up would drag zmq and
jupyter_client into every such process, including ones that never use
Jupyter: instead a meta path finder waits for ``jupyter_client.session`` to
be imported and calls ``kernelwire.install()`` right after it has run, before
any other module can copy its ``Session``.  It lives outside the kernelwire
package because importing the package imports jupyter_client.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

_TARGET = "jupyter_client.session"

#: set when the install must wait for kernelwire's package import to finish
pending = False


def _kernelwire_initializing() -> bool:
    package = sys.modules.get("kernelwire")
    return package is not None and getattr(package.__spec__, "_initializing", False)


def enabled() -> bool:
    """Whether the environment asks for kernelwire at start-up."""
    return os.environ.get("KERNELWIRE_INSTALL", "") not in ("", "0")


class _InstallingLoader(importlib.abc.Loader):
    """Runs jupyter_client.session, then installs kernelwire."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        global pending
        self._inner.exec_module(module)
        module.__loader__ = module.__spec__.loader = self._inner
        if _kernelwire_initializing():
            # kernelwire's own import pulled jupyter_client in: kernelwire.install
            # cannot be imported yet, and installs itself when it is (see pending)
            pending = True
            return
        from kernelwire.install import install

        install()

    def __getattr__(self, name: str):  # get_source, is_package, ...
        return getattr(self._inner, name)


class _WaitForJupyterClient(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # importlib protocol
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _InstallingLoader(spec.loader)
        return spec


def activate() -> None:
    """Install kernelwire now, or as soon as jupyter_client.session is imported."""
    if _TARGET in sys.modules:
        from kernelwire.install import install

        install()
    elif not any(isinstance(f, _WaitForJupyterClient) for f in sys.meta_path):
        sys.meta_path.insert(0, _WaitForJupyterClient())


if enabled():
    activate()
