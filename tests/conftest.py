"""Shared fixtures: every core-level test runs against both implementations."""

from __future__ import annotations

import importlib.util

import pytest
from jupyter_client import jsonutil
from jupyter_client import session as jc_session

from kernelwire import _core, _pycore
from kernelwire.session import Session


def _compiled_available() -> bool:
    try:
        from kernelwire import _ccore  # noqa: F401
    except ImportError:
        return False
    return True


COMPILED = _compiled_available()
# The compiled core must be tested wherever it can be built: a run that
# expects it (the default) fails loudly instead of silently testing less.
IMPLEMENTATIONS = ["cython", "pure"] if COMPILED else ["pure"]


def session_class(impl: str) -> type[Session]:
    """kernelwire.Session on the core ``impl`` ("cython" or "pure"), I/O as selected."""
    return Session.pinned(core=impl)


def core_module(impl: str):
    if impl == "pure":
        return _pycore
    from kernelwire import _ccore

    return _ccore


@pytest.fixture(autouse=True)
def _jupyter_client_parses_dates():
    """Undo ipyparallel's import-time no-op of jupyter_client's extract_dates.

    Importing ipyparallel's client (any cluster test, even at collection)
    replaces ``jupyter_client.session.extract_dates`` for the whole process;
    every test starts from jupyter_client's real behaviour instead.
    """
    jc_session.extract_dates = jsonutil.extract_dates
    yield


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request) -> str:
    return request.param


@pytest.fixture
def Session_(impl) -> type[Session]:  # it is a class
    return session_class(impl)


@pytest.fixture
def core(impl):
    return core_module(impl)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs(package, reason=...): the test needs an optional package, one the"
        " test-minimal extra leaves out; it is skipped, with the reason, where that"
        " package is not installed",
    )


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs"):
        package = mark.args[0]
        reason = mark.kwargs.get("reason")
        assert reason, f"{item.nodeid}: needs({package!r}) must say why (reason=...)"
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"needs {package} (not installed): {reason}")


def pytest_report_header(config):
    return f"kernelwire default core: {_core.implementation}; tested cores: {IMPLEMENTATIONS}"
