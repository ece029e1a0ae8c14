"""The cluster benchmark driver: a real cluster per contender, values checked, CPU per process."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("ipyparallel")
pytest.importorskip("psutil", reason="the driver reads each cluster process's CPU time")

from kernelwire.bench.ipp_driver import WORKLOADS  # noqa: E402
from kernelwire.bench.processes import LineProcess  # noqa: E402


@pytest.mark.parametrize("contender", ["kernelwire", "jupyter_client"])
def test_driver_runs_every_workload_and_says_what_ran(contender):
    driver = LineProcess([sys.executable, "-m", "kernelwire.bench.ipp_driver", contender],
                         stdin=True)
    try:
        ran = driver.read(timeout=180)["ready"]
        if contender == "kernelwire":
            assert ran["session"] == "kernelwire.session.Session"
            assert ran["serialize_object"] == "kernelwire.serialize" and "core" in ran
        else:
            assert ran["session"] == "jupyter_client.session.Session"
            assert ran["serialize_object"] == "ipyparallel.serialize.serialize"
        for name in WORKLOADS:
            size = 20 if name == "tiny-tasks" else 400_000
            driver.send({"workload": name, "size": size, "repeat": 2})
            reply = driver.read(timeout=300)
            assert reply["count"] == (40 if name == "tiny-tasks" else 2)
            assert reply["seconds"] > 0
            assert {"client", "hub", "schedulers", "engines"} <= set(reply["cpu"])
            assert all(v >= 0 for v in reply["cpu"].values())
        driver.send({"workload": "no-such-workload", "size": 1})
        with pytest.raises(Exception, match="no-such-workload"):
            driver.read(timeout=60)
    finally:
        driver.close()
