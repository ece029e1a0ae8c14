"""pytest plugin: run jupyter_client's own tests against kernelwire.Session.

Loaded with ``-p jc_rebind_plugin`` before collection, it rebinds
``jupyter_client.session.Session`` to kernelwire's class for the core named
by ``KERNELWIRE_TEST_IMPL`` ("cython" or "pure").
"""

import os

from jupyter_client import session as jc_session

from kernelwire.session import Session


def pytest_configure(config):
    impl = os.environ.get("KERNELWIRE_TEST_IMPL", "cython")
    if impl == "pure":
        cls = Session.pinned(core="pure")
    else:
        cls = Session
        if Session.implementations()["core"] != "cython":
            raise RuntimeError("the compiled core is not importable")
    jc_session.Session = cls
    config.kernelwire_session_class = cls


def pytest_report_header(config):
    cls = config.kernelwire_session_class
    impl = cls.implementations()["core"]
    return f"jupyter_client.session.Session -> {cls.__module__}.{cls.__name__} ({impl})"
