"""Make every later ``jupyter_client.session.Session`` a kernelwire.Session.

``install()`` rebinds the class in three places:

1. ``jupyter_client.session.Session`` itself, so code that looks it up at
   call time (``jupyter_client.session.Session(...)``) and every module
   imported later (``from jupyter_client.session import Session``) gets
   kernelwire's.  No import hook is needed for modules imported later: they
   copy the name from the patched module.
2. Every already imported module holding the original class under any name
   (ipykernel.kernelbase, jupyter_server, ipyparallel's client, hub,
   heartbeat monitor, engine, nanny, ...): found by scanning ``sys.modules``.
3. traitlets ``Instance("jupyter_client.session.Session")`` traits not yet
   resolved (jupyter_client's ConnectionFileMixin and SessionFactory) are
   pinned to the original class first, so they keep accepting stock
   Sessions: kernelwire.Session is a subclass and passes either way.

Sessions created before ``install()`` stay what they are.  ``uninstall()``
puts the original class back everywhere ``install()`` (or an import made
while installed) put kernelwire's.  Setting ``KERNELWIRE_INSTALL_LOG`` to a
file path appends one JSON line per install, and per fork of an installed
process (pid, argv, implementation), so tests can tell which processes of a
cluster switched.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import traitlets
from jupyter_client import session as jc_session

from ._core import implementation
from .session import Session as KernelwireSession

_TRAIT_KLASS_NAME = "jupyter_client.session.Session"
_lock = threading.RLock()
_original: type | None = None  # jupyter_client's class while installed
_rebound: list[tuple[ModuleType, str]] = []
_modules_at_install: set[str] = set()


def original_session_class() -> type:
    """jupyter_client's own Session class, whether or not kernelwire is installed."""
    return _original if _original is not None else jc_session.Session


def is_installed() -> bool:
    """True between ``install()`` and ``uninstall()``."""
    return _original is not None


def install() -> None:
    """Make every later ``jupyter_client.session.Session`` kernelwire's (idempotent)."""
    global _original
    with _lock:
        if _original is not None:
            return
        original = jc_session.Session
        if original is KernelwireSession or issubclass(original, KernelwireSession):
            return  # someone already rebound it (e.g. a test plugin): leave it alone
        _pin_string_traits(original)
        _modules_at_install.clear()
        _modules_at_install.update(sys.modules)
        _rebound.clear()
        for module in _modules_to_scan():
            for name, value in list(vars(module).items()):
                if value is original:
                    setattr(module, name, KernelwireSession)
                    _rebound.append((module, name))
        if jc_session.Session is original:  # kernelwire.* modules are not scanned
            jc_session.Session = KernelwireSession
            _rebound.append((jc_session, "Session"))
        _original = original
        _install_ipp_serialization()
        _record_install()


def uninstall() -> None:
    """Restore jupyter_client's Session wherever ``install()`` replaced it."""
    global _original
    with _lock:
        original = _original
        if original is None:
            return
        for module, name in _rebound:
            if getattr(module, name, None) is KernelwireSession:
                setattr(module, name, original)
        # modules imported while installed copied kernelwire's class
        for module in _modules_to_scan():
            if module.__name__ in _modules_at_install:
                continue
            for name, value in list(vars(module).items()):
                if value is KernelwireSession:
                    setattr(module, name, original)
        _unpin_resolved_traits(original)
        _rebound.clear()
        _uninstall_ipp_serialization()
        _original = None


# -- IPython Parallel: object serialization and header dates ---------------------
# A process on kernelwire also sends apply/push/pull payloads with kernelwire's
# zero-copy serialization (kernelwire.ipp_serialize), which stock processes
# still decode, and parses IPython Parallel's header dates with kernelwire's
# parser (kernelwire.ipp_dates). ipyparallel is heavy: wait for it to be
# imported, never import it.

_IPP_SERIALIZE = "ipyparallel.serialize"
# ipyparallel.util holds the date parsers its other modules copy; the Hub copies
# jupyter_client's parse_date itself. The KERNELWIRE_INSTALL hook can fire while
# ipyparallel.util is still executing (it imports jupyter_client.session), so the
# modules that use the parsers trigger the rebinding too.
_IPP_DATE_MODULES = (
    "ipyparallel.util",
    "ipyparallel.controller.hub",
    "ipyparallel.client.asyncresult",
    "ipyparallel.client.client",
)


class _AfterImport(importlib.abc.MetaPathFinder):
    """One-shot finder: runs ``callback`` right after module ``name`` has executed."""

    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(self, fullname, path, target=None):  # importlib protocol
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            loader, callback = spec.loader, self.callback
            exec_module = loader.exec_module  # this module's own loader instance

            def exec_then_callback(module: ModuleType) -> None:
                exec_module(module)
                callback()

            loader.exec_module = exec_then_callback  # type: ignore[method-assign]
        return spec


def _when_imported(name: str, callback: Callable[[], None]) -> None:
    """``callback()`` now if ``name`` is loaded, else right after it is (while installed)."""
    if name in sys.modules:
        callback()
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, lambda: _original is not None and callback()))


def _install_ipp_serialization() -> None:
    _when_imported(_IPP_SERIALIZE, _ipp_serialize_install)
    for name in _IPP_DATE_MODULES:
        _when_imported(name, _ipp_dates_install)


def _ipp_serialize_install() -> None:
    from . import ipp_serialize

    ipp_serialize.install()


def _ipp_dates_install() -> None:
    from . import ipp_dates

    ipp_dates.install()


def _uninstall_ipp_serialization() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterImport)]
    if _IPP_SERIALIZE in sys.modules:
        from . import ipp_serialize

        if ipp_serialize.is_installed():
            ipp_serialize.uninstall()
    if "kernelwire.ipp_dates" in sys.modules:
        from . import ipp_dates

        ipp_dates.uninstall()


def _modules_to_scan() -> list[ModuleType]:
    """Loaded modules except kernelwire's own (which must keep both classes)."""
    return [
        module
        for name, module in list(sys.modules.items())
        if isinstance(module, ModuleType)
        and name != "kernelwire"
        and not name.startswith("kernelwire.")
        and hasattr(module, "__dict__")
    ]


def _session_instance_traits() -> list[traitlets.Instance]:
    """Instance traits of loaded HasTraits classes that hold a Session."""
    found: list[traitlets.Instance] = []
    seen: set[int] = set()
    stack: list[type] = [traitlets.HasTraits]
    while stack:
        cls = stack.pop()
        for sub in type.__subclasses__(cls):
            if id(sub) not in seen:
                seen.add(id(sub))
                stack.append(sub)
        for value in list(vars(cls).values()):  # a finalizer may run meanwhile
            if isinstance(value, traitlets.Instance):
                found.append(value)
    return found


def _pin_string_traits(original: type) -> None:
    # Resolved after install, "jupyter_client.session.Session" would mean
    # kernelwire's class and reject stock Sessions made elsewhere.
    for trait in _session_instance_traits():
        if trait.klass == _TRAIT_KLASS_NAME:
            trait.klass = original


def _unpin_resolved_traits(original: type) -> None:
    # Traits of classes first used while installed resolved their string to
    # kernelwire's class; after uninstall they must accept stock Sessions.
    for trait in _session_instance_traits():
        if trait.klass is KernelwireSession:
            trait.klass = original


_fork_hook_registered = False


def _record_install(forked: bool = False) -> None:
    global _fork_hook_registered
    path = os.environ.get("KERNELWIRE_INSTALL_LOG")
    if not path:
        return
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        # forked children (ipyparallel's schedulers) inherit the install: log them too
        os.register_at_fork(after_in_child=_record_fork)
        _fork_hook_registered = True
    record: dict[str, Any] = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "forked": forked,
        "argv": getattr(sys, "orig_argv", sys.argv),  # sys.argv is ["-m"] during -m imports
        "implementation": implementation,
        "session_class": _qualname(KernelwireSession),
        "jupyter_client_session": _qualname(jc_session.Session),
        "ipyparallel_serialization": _ipp_serialization_state(),
    }
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one O_APPEND write: safe with many processes
    finally:
        os.close(fd)


def _ipp_serialization_state() -> str:
    if _IPP_SERIALIZE not in sys.modules:
        return "on import"
    from . import ipp_serialize

    return "kernelwire" if ipp_serialize.is_installed() else "stock"


def _record_fork() -> None:
    if _original is not None:
        _record_install(forked=True)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _install_if_the_startup_hook_waits() -> None:
    # KERNELWIRE_INSTALL=1 and kernelwire imported before jupyter_client: the
    # hook fired while this package was half-imported and left the job here
    hook = sys.modules.get("_kernelwire_startup")
    if hook is not None and getattr(hook, "pending", False):
        hook.pending = False
        install()


_install_if_the_startup_hook_waits()
