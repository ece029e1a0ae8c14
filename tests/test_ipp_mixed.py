"""Mixed IPython Parallel clusters: kernelwire and stock processes on one wire."""

from __future__ import annotations

import json
import operator
import os

import numpy as np
import pytest
from jupyter_client import session as jc_session

import kernelwire
import kernelwire.ipp
from kernelwire.install import is_installed

ipp = pytest.importorskip("ipyparallel")

# (controller, engines, client) on kernelwire?
MIXES = {
    "stock-controller/kernelwire-engines/stock-client": (False, True, False),
    "kernelwire-controller/stock-engines/kernelwire-client": (True, False, True),
}

ENGINE_PROBE = """
import jupyter_client.session
probe = (type(get_ipython().kernel.session).__module__, jupyter_client.session.Session.__module__)
"""


@pytest.fixture(scope="module", params=list(MIXES))
def mixed(request, tmp_path_factory):
    controller_kw, engines_kw, client_kw = MIXES[request.param]
    root = tmp_path_factory.mktemp("ipp-mixed")
    saved = {k: os.environ.get(k) for k in ("IPYTHONDIR", "KERNELWIRE_INSTALL_LOG")}
    os.environ["IPYTHONDIR"] = str(root / "ipython")
    os.environ["KERNELWIRE_INSTALL_LOG"] = str(root / "install.log")
    assert not is_installed()
    cluster = kernelwire.ipp.Cluster(
        n=2,
        controller_args=["--ping=200"],
        kernelwire_controller=controller_kw,
        kernelwire_engines=engines_kw,
        kernelwire_client=client_kw,
    )
    client = cluster.start_and_connect_sync()
    client.wait_for_engines(2, timeout=60)
    yield (controller_kw, engines_kw, client_kw), cluster, client, root / "install.log"
    client.close()
    cluster.stop_cluster_sync()
    kernelwire.uninstall()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_each_side_runs_what_it_was_told(mixed):
    (controller_kw, engines_kw, client_kw), cluster, client, log = mixed
    assert type(client.session) is (kernelwire.Session if client_kw else jc_session.Session)
    view = client[:]
    view.execute(ENGINE_PROBE, block=True)
    expected = "kernelwire.session" if engines_kw else "jupyter_client.session"
    assert view.pull("probe", block=True) == [(expected, expected)] * 2
    installed = set()
    if log.exists():
        installed = {json.loads(line)["pid"] for line in log.read_text().splitlines()}
    assert (cluster.controller.process.pid in installed) is controller_kw


def test_apply_map_and_tasks(mixed):
    _, _, client, _ = mixed
    assert client[:].apply_sync(operator.mul, 6, 7) == [42, 42]
    assert client[:].map_sync(pow, range(10), [3] * 10) == [x**3 for x in range(10)]
    view = client.load_balanced_view()
    assert view.map_sync(operator.neg, range(40)) == [-x for x in range(40)]


def test_push_pull_numpy(mixed):
    _, _, client, _ = mixed
    view = client[:]
    array = np.arange(500_000, dtype=np.float64).reshape(1000, 500)
    view.push({"array": array}, block=True)
    for pulled in view.pull("array", block=True):
        np.testing.assert_array_equal(pulled, array)


def test_engine_error(mixed):
    _, _, client, _ = mixed
    with pytest.raises(ipp.RemoteError) as info:
        client.load_balanced_view().apply_sync(operator.truediv, 1, 0)
    assert info.value.ename == "ZeroDivisionError"
