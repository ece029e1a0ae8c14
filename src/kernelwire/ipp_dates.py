"""IPython Parallel's own header-date parsing, through kernelwire's compiled parser.

IPython Parallel turns jupyter_client's date parsing off and parses the
dates it needs itself: the Hub every request's and reply's ``header["date"]``
(``jupyter_client.jsonutil.parse_date``) and ``metadata["started"]``
(``ipyparallel.util.extract_dates``), the client its result metadata
(``ipyparallel.util._parse_date``). Each is a regex and dateutil per string.

``install()`` rebinds those names, in ``ipyparallel.util`` and in every
loaded ``ipyparallel.*`` module that copied them, to functions that parse
the common ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` stamps (valid ASCII dates)
with the core's parser and hand every other string to the original. For
those stamps dateutil's ``parse`` and ``isoparse`` agree and the core builds
the very same datetime (``tz.UTC``); everything else is the original's own
result, warnings and errors included. ``uninstall()`` puts the originals back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, cast

from . import _ipp_originals
from ._core import core

_UTIL = _ipp_originals.DATES_MODULE
_replacements: dict[str, Callable[..., Any]] = {}


def _parse_utc_first(
    original: Callable[[Any], Any], stamp: Callable[[Any], Any] | None = None
) -> Callable[[Any], Any]:
    """``original`` with ``...Z`` stamps parsed by the core's ``parse_utc_stamp`` first."""
    stamp = core.parse_utc_stamp if stamp is None else stamp

    def parse_date(s: Any) -> Any:
        dt = stamp(s)
        return original(s) if dt is None else dt

    parse_date.__doc__ = original.__doc__
    parse_date.__wrapped__ = original  # type: ignore[attr-defined]
    return parse_date


def _extract_with(parse_date: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def extract_dates(obj: Any) -> Any:
        """IPython Parallel's extract_dates: every ISO8601 string in dicts and lists parsed."""
        if isinstance(obj, dict):
            return {k: extract_dates(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [extract_dates(o) for o in obj]
        if isinstance(obj, str):
            return parse_date(obj)
        return obj

    return extract_dates


def _recorded_originals() -> dict[str, Callable[..., Any]] | None:
    """The originals (see _ipp_originals.dates), replacements built for them; None while
    ipyparallel.util is not (fully) imported."""
    originals = _ipp_originals.dates()
    if originals is not None and not _replacements:
        ipp_parse = _parse_utc_first(originals["_parse_date"])
        _replacements.update(
            jsonutil_parse_date=_parse_utc_first(originals["jsonutil_parse_date"]),
            _parse_date=ipp_parse,
            extract_dates=_extract_with(ipp_parse),
        )
    return originals


def _rebind(old: dict[str, Callable[..., Any]], new: dict[str, Callable[..., Any]]) -> None:
    """In every loaded ipyparallel module, replace each function of ``old`` by ``new``'s."""
    swap = {id(func): new[key] for key, func in old.items()}
    for name, module in list(sys.modules.items()):
        if module is None or name.partition(".")[0] != "ipyparallel":
            continue
        namespace = getattr(module, "__dict__", {})
        for attr, value in list(namespace.items()):
            replacement = swap.get(id(value))
            if replacement is not None and any(value is f for f in old.values()):
                setattr(module, attr, replacement)


def install() -> None:
    """Route IPython Parallel's date parsing through kernelwire's parser (idempotent).

    Does nothing until ``ipyparallel.util`` has been imported. Call again after
    importing more of ipyparallel: modules imported after ``ipyparallel.util``
    copy its rebound names by themselves, but the Hub's ``parse_date`` comes
    from jupyter_client and is rebound per module (``kernelwire.install()``
    does this on each import that needs it).
    """
    originals = _recorded_originals()
    if originals is not None:
        _rebind(originals, _replacements)


def uninstall() -> None:
    """Put IPython Parallel's own date parsing back (idempotent)."""
    if _replacements:  # built, so the originals are recorded
        _rebind(_replacements, cast(dict, _ipp_originals.dates()))


def is_installed() -> bool:
    util = sys.modules.get(_UTIL)
    return bool(_replacements) and util is not None and util._parse_date is _replacements[
        "_parse_date"
    ]
