"""Make IPython Parallel use kernelwire's zero-copy serialization in this process.

``install()`` rebinds ``serialize_object``, ``deserialize_object``,
``pack_apply_message`` and ``unpack_apply_message`` in
``ipyparallel.serialize`` and in every loaded ``ipyparallel.*`` module that
imported them (client, engine kernel, data publisher, the top-level
package); modules imported later pick kernelwire's up from
``ipyparallel.serialize``. ``uninstall()`` restores IPython Parallel's.

Call it in every process of a cluster (client, engines; the controller and
schedulers forward buffers without decoding them). Processes that did not
call it still interoperate: kernelwire decodes IPython Parallel's frames, and
IPython Parallel decodes kernelwire's as long as kernelwire is importable.

Run a program with it active: ``python -m kernelwire.ipp_serialize
<module> [args...]`` (e.g. ``ipyparallel.engine``) installs, then runs
``<module>`` as ``__main__``.

Security: the installed functions unpickle message buffers, as IPython
Parallel's do: only on messages whose signature verified.
"""

from __future__ import annotations

import importlib
import runpy
import sys
from collections.abc import Callable
from typing import Any

from . import _ipp_originals
from . import serialize as _kernelwire

NAMES = _ipp_originals.SERIALIZE_NAMES


def _replacements() -> dict[str, Callable[..., Any]]:
    return {name: getattr(_kernelwire, name) for name in NAMES}


def _rebind(old: dict[str, Callable[..., Any]], new: dict[str, Callable[..., Any]]) -> None:
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.partition(".")[0] != "ipyparallel":
            continue
        namespace = getattr(module, "__dict__", {})
        for name in NAMES:
            if namespace.get(name) is old[name]:
                setattr(module, name, new[name])


def install() -> None:
    """Use kernelwire's serialization for IPython Parallel in this process (idempotent)."""
    importlib.import_module("ipyparallel.serialize")
    _rebind(_ipp_originals.serialize(), _replacements())


def uninstall() -> None:
    """Restore IPython Parallel's own serialization in this process (idempotent)."""
    if _ipp_originals.SERIALIZE_MODULE in sys.modules:  # else nothing was ever rebound
        _rebind(_replacements(), _ipp_originals.serialize())


def is_installed() -> bool:
    """Whether ``ipyparallel.serialize`` currently uses kernelwire's functions."""
    module = sys.modules.get("ipyparallel.serialize")
    return module is not None and all(
        getattr(module, name, None) is getattr(_kernelwire, name) for name in NAMES
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m kernelwire.ipp_serialize <module> [args...]``: install, then run ``<module>``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python -m kernelwire.ipp_serialize <module> [args...]")
    install()
    sys.argv = argv
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    # run the imported module's main, so the state lives in one module object
    from kernelwire.ipp_serialize import main as _main

    _main()
