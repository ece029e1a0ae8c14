"""A whole IPython Parallel cluster (n=2) on kernelwire, started once for the module."""

from __future__ import annotations

import json
import operator
import os

import numpy as np
import psutil
import pytest

import kernelwire
import kernelwire.ipp
from kernelwire.install import is_installed

ipp = pytest.importorskip("ipyparallel")  # a declared test dependency: present in CI


ENGINE_PROBE = """
import jupyter_client.session, kernelwire
probe = (
    type(get_ipython().kernel.session).__module__,
    jupyter_client.session.Session.__module__,
    kernelwire.implementation,
)
"""


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    """IPYTHONDIR and the install log in temp dirs, for the launched processes too."""
    root = tmp_path_factory.mktemp("ipp")
    saved = {k: os.environ.get(k) for k in ("IPYTHONDIR", "KERNELWIRE_INSTALL_LOG")}
    os.environ["IPYTHONDIR"] = str(root / "ipython")
    os.environ["KERNELWIRE_INSTALL_LOG"] = str(root / "install.log")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def cluster(cluster_env):
    assert not is_installed()
    cluster = kernelwire.ipp.Cluster(n=2, controller_args=["--ping=200"])
    client = cluster.start_and_connect_sync()
    client.wait_for_engines(2, timeout=60)
    yield cluster, client
    client.close()
    cluster.stop_cluster_sync()
    kernelwire.uninstall()  # the Cluster installed kernelwire for its client


def test_client_runs_on_kernelwire(cluster):
    _, client = cluster
    assert type(client.session) is kernelwire.Session


def test_apply(cluster):
    _, client = cluster
    # builtins only: functions of this module would be pickled by reference
    assert client[:].apply_sync(operator.mul, 6, 7) == [42, 42]
    assert sorted(client[:].apply_sync(os.getpid)) == sorted(set(client[:].apply_sync(os.getpid)))


def test_map(cluster):
    _, client = cluster
    assert client[:].map_sync(pow, range(20), [2] * 20) == [x**2 for x in range(20)]


def test_load_balanced_tasks(cluster):
    _, client = cluster
    view = client.load_balanced_view()
    results = [view.apply_async(pow, i, 2) for i in range(50)]
    assert [r.get(timeout=60) for r in results] == [i**2 for i in range(50)]
    assert view.map_sync(str, range(30)) == [str(i) for i in range(30)]


def test_push_pull_numpy(cluster):
    _, client = cluster
    view = client[:]
    small = np.arange(10, dtype=np.int16)
    large = np.random.default_rng(5).standard_normal((600, 700))  # ~3.4 MB: zero-copy frames
    view.push({"small": small, "large": large}, block=True)
    for pulled_small, pulled_large in view.pull(("small", "large"), block=True):
        np.testing.assert_array_equal(pulled_small, small)
        np.testing.assert_array_equal(pulled_large, large)
    view.execute("total = float(large.sum())", block=True)
    assert view.pull("total", block=True) == pytest.approx([float(large.sum())] * 2)


def test_engine_error(cluster):
    _, client = cluster
    with pytest.raises(ipp.error.CompositeError) as info:
        client[:].apply_sync(int, "not a number")
    assert "not a number" in str(info.value)
    assert [e[0] for e in info.value.elist] == ["ValueError", "ValueError"]
    with pytest.raises(ipp.RemoteError) as one:
        client.load_balanced_view().apply_sync(operator.truediv, 1, 0)
    assert one.value.ename == "ZeroDivisionError"


def test_engines_run_on_kernelwire(cluster):
    _, client = cluster
    view = client[:]
    view.execute(ENGINE_PROBE, block=True)
    for module, patched, implementation in view.pull("probe", block=True):
        assert module == patched == "kernelwire.session"
        assert implementation == kernelwire.implementation


def test_every_cluster_process_installed_kernelwire(cluster, cluster_env):
    launched, client = cluster
    # the controller with its forked Hub helpers and schedulers, the engines and their nannies
    controller = launched.controller.process
    processes = [controller, *controller.children(recursive=True)]
    for pid in client[:].apply_sync(os.getpid):
        engine = psutil.Process(pid)
        processes += [engine, *engine.children(recursive=True)]
    nannies = [p for p in processes if "ipyparallel.engine.nanny" in p.cmdline()]
    assert len(nannies) == 2
    assert len(processes) >= 1 + 3 + 2 + 2  # controller, >=3 forks, engines, nannies

    records = [json.loads(line) for line in (cluster_env / "install.log").read_text().splitlines()]
    installed = {r["pid"]: r for r in records}
    for process in processes:
        record = installed.get(process.pid)
        assert record is not None, f"{process.pid} {process.cmdline()} did not install kernelwire"
        assert record["jupyter_client_session"] == "kernelwire.session.Session"
        assert record["implementation"] == kernelwire.implementation
    assert any(r["forked"] for r in installed.values() if r["ppid"] == controller.pid)


ENGINE_SERIALIZATION_PROBE = """
import ipyparallel.serialize, kernelwire.ipp_serialize
probe = (
    kernelwire.ipp_serialize.is_installed(),
    ipyparallel.serialize.deserialize_object.__module__,
    # a nested array pushed by the client is a view of a received frame
    not nested["inner"][0]["array"].flags.owndata,
    float(nested["inner"][0]["array"].sum()),
)
"""


def test_cluster_serializes_with_kernelwire(cluster):
    _, client = cluster
    from kernelwire import ipp_serialize

    assert ipp_serialize.is_installed()  # the client's process
    array = np.arange(1 << 18, dtype=np.float64)  # 2 MiB: sent out of band
    view = client[:]
    view.push({"nested": {"inner": [{"array": array}]}}, block=True)
    view.execute(ENGINE_SERIALIZATION_PROBE, block=True)
    for installed, module, is_view, total in view.pull("probe", block=True):
        assert installed and module == "kernelwire.serialize"
        assert is_view
        assert total == float(array.sum())
    pulled = client[0].pull("nested", block=True)
    assert np.array_equal(pulled["inner"][0]["array"], array)
