"""pytest plugin: run IPython Parallel's own serialization tests against kernelwire's functions.

Loaded with ``-p ipp_serialize_rebind_plugin`` before collection, it calls
``kernelwire.ipp_serialize.install()``, so the test file's
``from ipyparallel.serialize import serialize_object, deserialize_object``
binds kernelwire's functions.
"""

import ipyparallel.serialize

from kernelwire import serialize
from kernelwire.ipp_serialize import install


def pytest_configure(config):
    install()


def pytest_report_header(config):
    bound = ipyparallel.serialize.serialize_object
    ok = bound is serialize.serialize_object
    return f"ipyparallel.serialize.serialize_object -> {bound.__module__}.{bound.__name__} ({ok})"
