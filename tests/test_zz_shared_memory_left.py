"""Runs last (pytest takes files in name order): no kernelwire segment outlives the suite."""

from __future__ import annotations

import time

import pytest

from kernelwire import _shm

pytestmark = pytest.mark.skipif(not _shm.supported(), reason="shared memory needs Linux")


def test_no_segment_is_left_after_the_suite():
    # what this process still holds goes within its linger (30 s) at most
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        live = [n for n in _shm.live_segments() if _shm.pid_alive(_shm._creator(n))]
        if not live:
            break
        time.sleep(0.5)
    assert live == [], "segments of live processes were never released"
    # segments of processes that died without clean-up (the SIGKILL tests' own are
    # swept there) go at the next Session start: that sweep leaves nothing
    _shm.sweep()
    assert _shm.live_segments() == []
