"""Leaks and buffer lifetimes, on both cores (fast versions of scripts/soak.py).

Memory is judged two ways after a warm-up: Python's allocated block count
(catches one leaked object per message) and the process RSS (catches C
allocations).  The replay history is capped small so its own, bounded,
growth does not hide a leak.  Zero-copy buffers must come back to their
original reference count: every one released, none released twice.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path

import psutil  # ipyparallel's dependency, in the test extra
import pytest
import zmq

HERE = Path(__file__).resolve().parent
KEY = b"leak-test-key"
MB = 1 << 20
# ASan's quarantine keeps freed memory resident: under scripts/sanitize.sh
# RSS says nothing about leaks (memory errors are what that run checks)
RSS_LIMIT = float("inf") if "asan" in os.environ.get("LD_PRELOAD", "") else 4 * MB


def rss() -> int:
    """Current resident set size in bytes."""
    return psutil.Process().memory_info().rss


def measure(step, n: int, warmup: int) -> tuple[int, int]:
    """(allocated-block growth, RSS growth) over n calls of step after a warm-up."""
    for i in range(warmup):
        step(i)
    gc.collect()
    blocks, mem = sys.getallocatedblocks(), rss()
    for i in range(n):
        step(i)
    gc.collect()
    return sys.getallocatedblocks() - blocks, rss() - mem


@pytest.fixture
def pair():
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.linger = b.linger = 0
    b.rcvtimeo = 10_000
    a.sndhwm = b.rcvhwm = 0
    a.bind(f"inproc://leaks-{id(a)}")
    b.connect(f"inproc://leaks-{id(a)}")
    yield a, b
    a.close()
    b.close()
    ctx.term()


def test_serialize_deserialize_flat(Session_):
    session = Session_(key=KEY, digest_history_size=1024)
    content = {"code": "x = 1", "silent": False, "n": 3}

    def step(i):
        frames = session.serialize(session.msg("execute_request", content=content))
        _, rest = session.feed_identities(frames)
        msg = session.deserialize(rest)
        assert msg["content"]["n"] == 3

    blocks, grown = measure(step, 50_000, 5_000)
    assert blocks < 2_000, f"{blocks} Python blocks left behind by 50,000 messages"
    assert grown < RSS_LIMIT, f"RSS grew {grown / MB:.1f} MiB over 50,000 messages"


def test_failed_deserialize_flat(Session_):
    """Rejected messages (the error paths) leak nothing either."""
    session = Session_(key=KEY, digest_history_size=1024)
    good = session.serialize(session.msg("x"))[1:]
    bad_json = [session.sign([b"{", b"{}", b"{}", b"{}"]), b"{", b"{}", b"{}", b"{}"]

    def step(i):
        for frames in ([b"%064x" % i] + good[1:], good[:3], bad_json, [b""] + good[1:]):
            session.digest_history.discard(frames[0])
            try:
                session.deserialize(list(frames))
            except (ValueError, TypeError):
                pass
            else:
                raise AssertionError("accepted a bad message")

    blocks, grown = measure(step, 10_000, 1_000)
    assert blocks < 2_000, f"{blocks} Python blocks left behind by 40,000 rejections"
    assert grown < RSS_LIMIT, f"RSS grew {grown / MB:.1f} MiB over 40,000 rejections"


@pytest.mark.parametrize("copy", [True, False])
def test_send_recv_flat(Session_, pair, copy):
    sender, receiver = Session_(key=KEY), Session_(key=KEY, digest_history_size=1024)
    a, b = pair

    def step(i):
        sender.send(a, "status", content={"execution_state": "idle"}, ident=b"peer")
        idents, msg = receiver.recv(b, mode=0, copy=copy)
        assert idents == [b"peer"] and msg["content"]["execution_state"] == "idle"

    blocks, grown = measure(step, 20_000, 2_000)
    assert blocks < 2_000, f"{blocks} Python blocks left behind by 20,000 messages"
    assert grown < RSS_LIMIT, f"RSS grew {grown / MB:.1f} MiB over 20,000 messages"


class Buffer(bytearray):
    """A bytearray that can be weakly referenced (to see it freed)."""


def wait_until(predicate, timeout=20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gc.collect()
        time.sleep(0.005)
    return True


def test_zero_copy_buffers_released_exactly_once(Session_, pair):
    """2,000 zero-copy sends: every buffer back to its own reference count."""
    sender, receiver = Session_(key=KEY), Session_(key=KEY, digest_history_size=1024)
    a, b = pair
    shared = Buffer(b"s" * sender.copy_threshold)  # sent every time
    baseline = sys.getrefcount(shared)
    refs = []
    for i in range(2_000):
        own = Buffer(b"%08d" % i * (sender.copy_threshold // 8))
        refs.append(weakref.ref(own))
        sender.send(a, "data", content={"i": i}, buffers=[shared, own])
        del own
        _, msg = receiver.recv(b, mode=0, copy=False)
        assert msg["buffers"][1][:8] == b"%08d" % i
        del msg
    # released: the last references go once libzmq is done with the frames
    assert wait_until(lambda: sys.getrefcount(shared) <= baseline), (
        f"shared buffer still has {sys.getrefcount(shared) - baseline} extra references"
    )
    assert wait_until(lambda: not any(r() for r in refs)), (
        f"{sum(r() is not None for r in refs)} buffers never released"
    )
    # never released twice: an extra release would have taken the count below
    time.sleep(0.05)
    gc.collect()
    assert sys.getrefcount(shared) == baseline
    shared.extend(b"x")  # no export left: the bytearray is resizable again


def test_zero_copy_tracker_done(Session_, pair):
    sender = Session_(key=KEY)
    a, b = pair
    buf = Buffer(b"t" * (2 * sender.copy_threshold))
    baseline = sys.getrefcount(buf)
    msg = sender.send(a, "data", buffers=[buf], track=True)
    tracker = msg["tracker"]
    b.recv_multipart()
    tracker.wait(10)
    assert tracker.done
    assert wait_until(lambda: sys.getrefcount(buf) <= baseline)


# -- closing and exiting with zero-copy frames queued -------------------------------

QUEUED = textwrap.dedent(
    """
    import gc, sys, weakref
    import zmq
    from conftest import session_class

    impl, scenario = sys.argv[1], sys.argv[2]
    Session = session_class(impl)

    class Buffer(bytearray):
        pass

    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    if scenario.endswith("linger0"):
        push.linger = 0
    push.sndhwm = 0
    push.connect("tcp://127.0.0.1:9")  # nobody listens: every frame stays queued
    session = Session(key=b"k")
    refs = []
    for i in range(200):
        buf = Buffer(b"q" * (1 << 17))
        refs.append(weakref.ref(buf))
        session.send(push, "data", content={"i": i}, buffers=[buf, memoryview(buf)[1:]])
        del buf
    received = None
    if scenario.startswith("held"):
        # a receiver holding zero-copy frames past the context's end
        pull, out = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        pull.linger = out.linger = 0
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        out.connect(f"tcp://127.0.0.1:{port}")
        session.send(out, "data", buffers=[Buffer(b"h" * (1 << 17))])
        pull.rcvtimeo = 5000
        received = session.recv(pull, mode=0, copy=False)[1]["buffers"]
    alive = lambda: sum(r() is not None for r in refs)
    print("queued", alive(), flush=True)
    if scenario.startswith("close"):
        push.close()
        ctx.term()
    elif scenario.startswith("destroy") or scenario.startswith("held"):
        ctx.destroy(linger=0)
    elif scenario.startswith("exit"):
        sys.exit(0)  # the interpreter goes with sockets, context and frames live
    if received is not None:
        assert bytes(received[0][:3]) == b"hhh"
        del received
    for _ in range(200):
        gc.collect()
        session.send(None, "poke")  # a send drains released buffers as well
        if not alive():
            break
        import time; time.sleep(0.01)
    print("released", alive() == 0, flush=True)
    """
)


@pytest.mark.parametrize(
    "scenario",
    ["close-linger0", "destroy", "held-frames", "exit", "exit-linger0"],
)
def test_queued_zero_copy_frames_at_close_and_exit(impl, scenario, tmp_path):
    script = tmp_path / "queued.py"
    script.write_text(QUEUED)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE)] + sys.path))
    proc = subprocess.run(
        [sys.executable, str(script), impl, scenario],
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails here
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "queued 200" in proc.stdout
    if not scenario.startswith("exit"):
        assert "released True" in proc.stdout, proc.stdout
