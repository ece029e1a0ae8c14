"""IPython Parallel's own functions, recorded before kernelwire rebinds any of them.

``kernelwire.install()`` makes IPython Parallel use kernelwire's object
serialization (``kernelwire.ipp_serialize``) and date parser
(``kernelwire.ipp_dates``) by rebinding names in ``ipyparallel`` modules.
This module is the one place that records what those names held first:
rebinding, uninstalling, tests and benchmarks all ask it for the originals.
It imports nothing from kernelwire, so any kernelwire module may import it.

Each group is recorded once, the first time it is asked for, and a function
that is already kernelwire's at that moment is refused (RuntimeError): the
record would then be of kernelwire's function, not IPython Parallel's.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

#: the object-serialization functions kernelwire.ipp_serialize rebinds
SERIALIZE_NAMES = (
    "serialize_object",
    "deserialize_object",
    "pack_apply_message",
    "unpack_apply_message",
)
SERIALIZE_MODULE = "ipyparallel.serialize.serialize"
#: where IPython Parallel's date parsers live (the modules using them copy them)
DATES_MODULE = "ipyparallel.util"

_serialize: dict[str, Callable[..., Any]] = {}
_dates: dict[str, Callable[..., Any]] = {}


def _unreplaced(where: str, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    module = getattr(func, "__module__", None) or ""
    if module == "kernelwire" or module.startswith("kernelwire."):
        raise RuntimeError(f"{where}.{name} was replaced before it was recorded")
    return func


def serialize() -> dict[str, Callable[..., Any]]:
    """IPython Parallel's functions of :data:`SERIALIZE_NAMES`, by name.

    Imports ``ipyparallel.serialize.serialize`` the first time.
    """
    if not _serialize:
        module = importlib.import_module(SERIALIZE_MODULE)
        _serialize.update(
            {name: _unreplaced(SERIALIZE_MODULE, name, getattr(module, name))
             for name in SERIALIZE_NAMES}
        )
    return dict(_serialize)


def dates() -> dict[str, Callable[..., Any]] | None:
    """The date parsers kernelwire.ipp_dates routes, or None until they can be recorded.

    Keys: ``jsonutil_parse_date`` (``jupyter_client.jsonutil.parse_date``, which
    IPython Parallel's Hub copies), ``_parse_date`` and ``extract_dates`` (of
    ``ipyparallel.util``). Never imports ipyparallel: None while
    ``ipyparallel.util`` is not imported, or still executing.
    """
    if not _dates:
        util = sys.modules.get(DATES_MODULE)
        if util is None or not hasattr(util, "extract_dates"):  # the later of the two defined
            return None
        from jupyter_client import jsonutil

        _dates.update(
            jsonutil_parse_date=_unreplaced("jupyter_client.jsonutil", "parse_date",
                                            jsonutil.parse_date),
            _parse_date=_unreplaced(DATES_MODULE, "_parse_date", util._parse_date),
            extract_dates=_unreplaced(DATES_MODULE, "extract_dates", util.extract_dates),
        )
    return dict(_dates)
