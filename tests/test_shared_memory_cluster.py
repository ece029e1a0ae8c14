"""kernelwire.ipp.Cluster(shared_memory=True): big buffers to local engines without sockets."""

from __future__ import annotations

import os

import numpy as np
import pytest

import kernelwire
import kernelwire.ipp
from kernelwire import _shm

ipp = pytest.importorskip("ipyparallel")
pytestmark = pytest.mark.skipif(not _shm.supported(), reason="shared memory needs Linux")

THRESHOLD = 1 << 16
BIG = np.arange(1 << 20, dtype=np.float64)  # 8 MB


# run with execute: functions of this module cannot be imported on the engines
PROBE = """
import mmap, jupyter_client.session
_base = a
while getattr(_base, "base", None) is not None:
    _base = _base.base
probe = (
    isinstance(_base, memoryview) and isinstance(_base.obj, mmap.mmap),  # mapped, not a frame
    float(a.sum()),
    jupyter_client.session.Session.__module__.startswith("kernelwire"),
)
"""
WRITE = """
if not a.flags.writeable:
    a = a.copy()
a[:100] = -1.0
written = float(a[:100].sum())
"""


def probe(view):
    view.execute(PROBE, block=True)
    return view.pull("probe", block=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("ipp-shm")
    saved = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(root / "ipython")
    cluster = kernelwire.ipp.Cluster(
        n=2, shared_memory=True, shared_memory_threshold=THRESHOLD, controller_args=["--ping=200"]
    )
    client = cluster.start_and_connect_sync()
    client.wait_for_engines(2, timeout=60)
    yield cluster, client
    client.session.shared_memory.release_all()  # what the client keeps for late receivers
    client.close()
    cluster.stop_cluster_sync()
    kernelwire.uninstall()
    if saved is None:
        os.environ.pop("IPYTHONDIR", None)
    else:
        os.environ["IPYTHONDIR"] = saved


def test_push_to_all_engines_goes_through_one_segment(cluster):
    _, client = cluster
    shm = client.session.shared_memory
    assert shm is not None and shm.peers == "known"
    assert {e.encode() for e in client._engines.values()} <= shm.learned
    before = shm.fallbacks
    client[:].push({"a": BIG}, block=True)
    held = shm.held()
    assert len(held) == 1  # one segment served both engines
    assert shm.fallbacks == before
    for mapped, total, on_kernelwire in probe(client[:]):
        assert mapped and on_kernelwire
        assert total == float(BIG.sum())


def test_a_big_argument_and_a_big_result(cluster):
    _, client = cluster
    # numpy's own functions: engines import them by name even without cloudpickle
    sums = client[:].apply_sync(np.sum, BIG)
    assert [float(x) for x in sums] == [float(BIG.sum())] * 2
    doubled = client[0].apply_sync(np.multiply, BIG, 2.0)
    assert np.array_equal(doubled, BIG * 2)


def test_scatter_and_gather(cluster):
    _, client = cluster
    view = client[:]
    view.scatter("part", BIG, block=True)
    assert np.array_equal(view.gather("part", block=True), BIG)


def test_an_engines_writes_reach_nobody_else(cluster):
    _, client = cluster
    local = BIG.copy()
    client[:].push({"a": local}, block=True)
    client[0].execute(WRITE, block=True)
    assert client[0].pull("written", block=True) == -100.0
    _, total, _ = probe(client[1])
    assert total == float(BIG.sum())  # the other engine still has the original
    assert np.array_equal(local, BIG)  # and so has the client


def test_a_result_fetched_later_from_the_hub(cluster):
    _, client = cluster
    ar = client[0].apply_async(np.arange, 1 << 20, dtype="float64")
    assert np.array_equal(ar.get(timeout=60), BIG)
    msg_id = ar.msg_ids[0]
    for cache in (client.results, client._futures, client.metadata):
        cache.pop(msg_id, None)
    fetched = client.get_result(msg_id, block=True)
    assert type(fetched).__name__ == "AsyncHubResult"  # it came from the Hub
    assert np.array_equal(fetched.get(timeout=60), BIG)


def test_a_stock_engine_in_the_cluster_gets_frames(cluster):
    cluster_, client = cluster
    cluster_.kernelwire_engines = False
    try:
        cluster_.start_engines_sync(1)
        client.wait_for_engines(3, timeout=60)
    finally:
        cluster_.kernelwire_engines = True
    stock_id = max(client.ids)
    stock_uuid = client._engines[stock_id].encode()
    client[:].apply_sync(int)  # every engine replies once
    assert stock_uuid not in client.session.shared_memory.learned
    client[:].push({"a": BIG}, block=True)
    probes = dict(zip(client.ids, probe(client[:]), strict=True))
    mapped, total, on_kernelwire = probes[stock_id]
    assert (mapped, on_kernelwire) == (False, False)
    assert total == float(BIG.sum())
    for engine_id, (mapped, total, on_kernelwire) in probes.items():
        if engine_id != stock_id:
            assert mapped and on_kernelwire and total == float(BIG.sum())


def test_a_stock_controller_is_refused():
    with pytest.raises(ValueError, match="kernelwire_controller=True"):
        kernelwire.ipp.Cluster(n=1, shared_memory=True, kernelwire_controller=False)
