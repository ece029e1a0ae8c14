"""A real IPython Parallel cluster whose engines serialize with kernelwire.

Two engines start through ``python -m kernelwire.ipp_serialize
ipyparallel.engine`` (install, then ipyparallel's own entry point); the
client installs in this process. push / pull / apply of nested arrays arrive
intact, the engines see arrays as views of their received frames (stock
ipyparallel would have copied these, nested two levels deep, into the
pickle), and a stock client (uninstalled) still works with the same engines.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

ipp = pytest.importorskip("ipyparallel")
from traitlets.config import Config  # noqa: E402

from kernelwire import ipp_serialize  # noqa: E402


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    saved = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    config = Config()
    config.LocalEngineSetLauncher.engine_cmd = [
        sys.executable, "-m", "kernelwire.ipp_serialize", "ipyparallel.engine",
    ]
    ipp_serialize.install()
    cluster = ipp.Cluster(n=2, controller_args=["--ping=200"], config=config)
    try:
        rc = cluster.start_and_connect_sync()
        rc.wait_for_engines(2, timeout=60)
        yield rc
    finally:
        cluster.stop_cluster_sync()
        ipp_serialize.uninstall()
        if saved is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = saved


def nested_arrays():
    rng = np.random.default_rng(5)
    return {
        "layer": [{"w": rng.random((64, 64)), "b": [np.arange(4096).astype(">i8")]}],
        "meta": {"deep": {"x": np.asfortranarray(rng.random((32, 48)))}, "n": 3},
    }


def check(out, expected, byte_order=True):
    assert_array_equal(out["layer"][0]["w"], expected["layer"][0]["w"])
    assert_array_equal(out["layer"][0]["b"][0], expected["layer"][0]["b"][0])
    if byte_order:
        assert out["layer"][0]["b"][0].dtype == np.dtype(">i8")
    assert_array_equal(out["meta"]["deep"]["x"], expected["meta"]["deep"]["x"])
    assert out["meta"]["n"] == 3


@ipp.interactive  # defined for the engine's namespace, sent by value
def _engine_report(data):
    import ipyparallel.engine.kernel as kernel

    from kernelwire import ipp_serialize

    arrays = [data["layer"][0]["w"], data["layer"][0]["b"][0], data["meta"]["deep"]["x"]]
    return {
        "installed": ipp_serialize.is_installed(),
        "unpack": kernel.unpack_apply_message.__module__,
        "views": [not a.flags.owndata for a in arrays],
    }


def test_engines_and_client_use_kernelwire(client):
    assert ipp_serialize.is_installed()
    data = nested_arrays()
    reports = client[:].apply_sync(_engine_report, data)
    assert len(reports) == 2
    for report in reports:
        assert report == {"installed": True, "unpack": "kernelwire.serialize",
                          "views": [True, True, True]}


@pytest.mark.needs("cloudpickle", reason="the lambda it applies belongs to this test module,"
                   " which engines cannot import: only cloudpickle sends it by value"
                   " (stock canning imports its module on the engine too)")
def test_push_pull_apply_nested_arrays(client):
    view = client[:]
    data = nested_arrays()
    view.push({"data": data}, block=True)
    for pulled in view.pull("data", block=True):
        check(pulled, data)
    sums = view.apply_sync(lambda d: float(d["layer"][0]["w"].sum()), data)
    assert sums == [float(data["layer"][0]["w"].sum())] * 2


def test_stock_client_with_kernelwire_engines(client):
    ipp_serialize.uninstall()
    try:
        assert not ipp_serialize.is_installed()
        view = client[:]
        data = nested_arrays()
        view.push({"stock_data": data}, block=True)
        for pulled in view.pull("stock_data", block=True):
            # kernelwire's frames decoded by stock ipyparallel; its own push (pickle
            # protocol 4, numpy 2.4) turns nested big-endian arrays native
            check(pulled, data, byte_order=False)
        assert view.apply_sync(ipp.interactive(lambda d: d["meta"]["n"]), data) == [3, 3]
    finally:
        ipp_serialize.install()
