"""Session.send -> Session.recv over real sockets, through both zmq I/O implementations."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import weakref

import numpy as np
import pytest
import zmq
from jupyter_client import session as jc_session
from zmq.eventloop.zmqstream import ZMQStream
from zmqio_fixtures import (
    KEY,
    TRANSPORTS,
    ZMQIO,
    session_class,
    signal_main_after,
    socket_pair,
)

MB = 1 << 20
BIG = 256 * MB


@pytest.fixture(params=list(ZMQIO))
def zmqio(request):
    return ZMQIO[request.param]


@pytest.fixture
def session(zmqio):
    return session_class(zmqio)(key=KEY)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def pair(ctx, tmp_path):
    """make(transport, kinds) -> (sender, receiver), closed after the test."""
    made = []

    def make(transport, kinds=(zmq.PUSH, zmq.PULL)):
        sockets = socket_pair(ctx, transport, tmp_path, kinds)
        made.extend(sockets)
        return sockets

    yield make
    for sock in made:
        sock.close(linger=0)


def test_session_uses_the_pinned_module(session, zmqio, pair):
    sender, _ = pair("inproc")
    assert type(session).implementations()["io"] == zmqio.IMPLEMENTATION
    assert zmqio.supports(sender) is (zmqio.IMPLEMENTATION == "pure" or zmqio.raw_path_available)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("copy", [True, False])
def test_small_message_round_trip(session, pair, transport, copy):
    sender, receiver = pair(transport, (zmq.DEALER, zmq.ROUTER))
    sent = session.send(sender, "execute_request", content={"code": "1+1", "n": [1, 2]})
    assert sent["tracker"] is jc_session.DONE
    idents, msg = session.recv(receiver, mode=0, copy=copy)
    assert len(idents) == 1  # the ROUTER's routing id
    # dates aside: ipyparallel, once imported, stops jupyter_client parsing them
    strip = lambda header: {k: v for k, v in header.items() if k != "date"}  # noqa: E731
    assert strip(msg["header"]) == strip(sent["header"])
    assert msg["content"] == {"code": "1+1", "n": [1, 2]}
    assert msg["buffers"] == []


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("copy", [True, False])
def test_many_buffers_round_trip(session, pair, transport, copy):
    sender, receiver = pair(transport)
    rng = np.random.default_rng(7)
    # sizes on both sides of copy_threshold, empty ones too
    sizes = [0, 1, 100, session.copy_threshold - 1, session.copy_threshold, 300_000] * 8
    buffers = [rng.integers(0, 255, n, dtype=np.uint8) for n in sizes]
    session.send(sender, "data", content={"k": 1}, buffers=buffers, ident=[b"a", b"b"])
    idents, msg = session.recv(receiver, mode=0, copy=copy)
    assert idents == [b"a", b"b"]
    assert len(msg["buffers"]) == len(buffers)
    for got, want in zip(msg["buffers"], buffers, strict=True):
        assert isinstance(got, memoryview)
        assert bytes(got) == want.tobytes()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_256mb_array_round_trip_without_copies(session, pair, transport):
    sender, receiver = pair(transport)
    array = np.ones(BIG // 8, dtype=np.float64)
    array[::4096] = np.arange(len(array[::4096]))
    tracemalloc.start()
    try:
        session.send(sender, "data", buffers=[array])
        _, msg = session.recv(receiver, mode=0, copy=False)
        received = np.frombuffer(msg["buffers"][0], dtype=np.float64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # no Python-visible copy of the 256 MB on either side
    assert peak < 4 * MB, peak
    frame = msg["buffers"][0].obj
    assert received.ctypes.data == np.frombuffer(frame, dtype=np.uint8).ctypes.data
    if transport == "inproc":
        # inproc hands over the message itself: the receiver reads the sender's memory
        assert received.ctypes.data == array.ctypes.data
    assert np.array_equal(received[::4096], array[::4096])
    del received, msg, frame


def test_tcp_256mb_peak_rss_shows_no_copy(zmqio, tmp_path):
    # a fresh process, so ru_maxrss measures this transfer alone
    code = textwrap.dedent(f"""
        import resource, numpy as np, zmq
        from zmqio_fixtures import ZMQIO, session_class, socket_pair
        Session = session_class(ZMQIO[{zmqio.IMPLEMENTATION!r}])
        s = Session(key=b"k")
        ctx = zmq.Context()
        a, b = socket_pair(ctx, "tcp", None)
        def rss():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        before = rss()
        array = np.ones({BIG} // 8)
        s.send(a, "data", buffers=[array])
        _, msg = s.recv(b, mode=0, copy=False)
        assert np.frombuffer(msg["buffers"][0])[-1] == 1.0
        print(rss() - before)
        ctx.destroy(linger=0)
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    growth = int(out.stdout.split()[-1])
    # the array plus libzmq's receive buffer; one more copy would add another 256 MB
    assert growth < 2.5 * BIG, growth


def test_zero_copy_buffers_released_exactly_once(session, zmqio, pair):
    sender, receiver = pair("tcp")
    session.copy_threshold = 1024
    shared = np.arange(512, dtype=np.float64)  # 4 KB: zero-copy
    baseline = sys.getrefcount(shared)
    refs = []
    for i in range(10_000):
        own = np.full(300, i, dtype=np.float64)
        refs.append(weakref.ref(own))
        session.send(sender, "data", buffers=[shared, own])
        del own
        if i % 100 == 99:  # keep the queues short
            for _ in range(100):
                session.recv(receiver, mode=0, copy=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        gc.collect()
        if zmqio.IMPLEMENTATION == "cython":
            zmqio.stats()  # drains what libzmq released
        if sys.getrefcount(shared) == baseline and not any(r() is not None for r in refs):
            break
        time.sleep(0.01)
    alive = sum(r() is not None for r in refs)
    assert alive == 0
    # more releases than references would have pushed it below the baseline
    assert sys.getrefcount(shared) == baseline
    if zmqio.IMPLEMENTATION == "cython" and zmqio.raw_path_available:
        created, released = zmqio.stats()
        assert created == released


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tracker_reports_libzmq_release(session, pair, transport):
    sender, receiver = pair(transport)
    session.copy_threshold = 1024
    array = np.zeros(100_000)
    sent = session.send(sender, "data", buffers=[array], track=True)
    tracker = sent["tracker"]
    assert isinstance(tracker, zmq.MessageTracker)
    assert tracker is not jc_session.DONE
    if transport == "inproc":
        # the message waits in the pipe, holding the array until received
        with pytest.raises(zmq.NotDone):
            tracker.wait(0.05)
        assert not tracker.done
    _, msg = session.recv(receiver, mode=0, copy=False)
    del msg
    gc.collect()
    tracker.wait(5)
    assert tracker.done


def test_untracked_and_copied_sends_return_done(session, pair):
    sender, receiver = pair("inproc")
    assert session.send(sender, "a", track=True)["tracker"] is jc_session.DONE
    assert session.send(sender, "a", buffers=[b"x"], track=True)["tracker"] is jc_session.DONE
    assert session.send(sender, "a", buffers=[np.zeros(10**5)])["tracker"] is jc_session.DONE
    for _ in range(3):
        assert session.recv(receiver, mode=0)[1]["msg_type"] == "a"


def test_noblock_with_nothing_queued(session, pair):
    _, receiver = pair("inproc")
    assert session.recv(receiver) == (None, None)
    assert session.recv(receiver, mode=zmq.NOBLOCK, copy=False) == (None, None)


def test_rcvtimeo_expiry_matches_jupyter_client(session, zmqio, pair):
    _, receiver = pair("tcp")
    receiver.rcvtimeo = 50
    start = time.monotonic()
    with pytest.raises(zmq.Again):
        zmqio.recv_frames(receiver, 0, True)
    assert time.monotonic() - start >= 0.04
    # jupyter_client's Session.recv turns any EAGAIN into (None, None)
    assert jc_session.Session(key=KEY).recv(receiver, mode=0) == (None, None)
    assert session.recv(receiver, mode=0) == (None, None)


def test_closed_socket_raises_zmqerror(session, zmqio, pair):
    sender, receiver = pair("inproc")
    sender.close()
    receiver.close()
    with pytest.raises(zmq.ZMQError):
        session.send(sender, "a")
    with pytest.raises(zmq.ZMQError):
        session.recv(receiver, mode=0)
    with pytest.raises(zmq.ZMQError):
        zmqio.recv_frames(receiver, zmq.NOBLOCK, False)


def test_ctrl_c_interrupts_blocking_recv(session, pair):
    _, receiver = pair("tcp")
    start = time.monotonic()
    thread = signal_main_after(0.2)
    with pytest.raises(KeyboardInterrupt):
        session.recv(receiver, mode=0)
    assert time.monotonic() - start < 5
    thread.join()


def test_signal_without_exception_does_not_end_recv(session, pair):
    sender, receiver = pair("tcp")
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda *args: seen.append(args[0]))
    try:
        signal_main_after(0.1, signal.SIGUSR1)

        def send_later():
            time.sleep(0.4)
            session.send(sender, "late")

        threading.Thread(target=send_later).start()
        _, msg = session.recv(receiver, mode=0)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert seen == [signal.SIGUSR1]
    assert msg["msg_type"] == "late"


def test_threads_send_through_one_session(session, ctx, tmp_path):
    receiver = ctx.socket(zmq.PULL)
    port = receiver.bind_to_random_port("tcp://127.0.0.1")
    n_threads, per_thread = 4, 300
    big = np.arange(20_000, dtype=np.float64)  # zero-copy
    errors = []

    def work(k):
        sock = ctx.socket(zmq.PUSH)  # zmq sockets are per thread; the Session is shared
        sock.linger = 1000
        sock.connect(f"tcp://127.0.0.1:{port}")
        try:
            for i in range(per_thread):
                session.send(sock, "t", content={"k": k, "i": i}, buffers=[big])
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            sock.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    seen = set()
    ids = set()
    for _ in range(n_threads * per_thread):
        _, msg = session.recv(receiver, mode=0, copy=False)
        seen.add((msg["content"]["k"], msg["content"]["i"]))
        ids.add(msg["msg_id"])
        assert np.array_equal(np.frombuffer(msg["buffers"][0]), big)
    for t in threads:
        t.join()
    receiver.close()
    assert not errors
    assert len(seen) == len(ids) == n_threads * per_thread


def test_send_raw_round_trip(session, pair):
    sender, receiver = pair("ipc")
    for copy in (True, False):
        msg = session.msg("raw", content={"x": 1})  # a fresh signature each time
        parts = session.serialize(msg)[2:] + [np.arange(10**5).tobytes()]
        session.send_raw(sender, parts, copy=copy, ident=b"id")
        idents, got = session.recv(receiver, mode=0, copy=False)
        assert idents == [b"id"]
        assert got["content"] == {"x": 1}
        assert bytes(got["buffers"][0]) == parts[-1]


class RecordingSocket:
    """A duck-typed socket: keeps the frames and sends them later, like ipykernel's IOPub thread."""

    def __init__(self):
        self.queued = []

    def send_multipart(self, frames, *args, **kwargs):
        self.queued.append(frames)


def test_duck_typed_socket_gets_frames_that_outlive_send(session, pair):
    sender, receiver = pair("inproc")
    duck = RecordingSocket()
    buffers = [np.full(100_000, 3.0)]
    session.send(duck, "later", buffers=buffers)
    del buffers
    gc.collect()
    sender.send_multipart(duck.queued.pop())
    _, msg = session.recv(receiver, mode=0)
    assert np.frombuffer(msg["buffers"][0]).sum() == 300_000.0


def test_zmqstream_takes_its_own_path(session, pair):
    sender, receiver = pair("inproc")
    stream = ZMQStream(receiver)
    session.send(sender, "via-stream", buffers=[b"abc"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not receiver.poll(10):
        pass
    _, msg = session.recv(stream, mode=0)
    assert msg["msg_type"] == "via-stream"
    assert bytes(msg["buffers"][0]) == b"abc"
    stream.close()


async def test_asyncio_socket_is_shadowed(session, tmp_path):
    actx = zmq.asyncio.Context()
    try:
        sender, receiver = socket_pair(actx, "inproc", tmp_path)
        try:
            session.send(sender, "async", buffers=[np.zeros(100_000)])
            _, msg = session.recv(receiver, mode=0, copy=False)
            assert msg["msg_type"] == "async"
            assert len(msg["buffers"][0]) == 800_000
        finally:
            sender.close()
            receiver.close()
    finally:
        actx.destroy(linger=0)


def test_interoperates_with_jupyter_client(session, pair):
    sender, receiver = pair("tcp")
    upstream = jc_session.Session(key=KEY)
    upstream.send(sender, "from-jc", content={"a": 1}, buffers=[np.arange(10**5)])
    _, msg = session.recv(receiver, mode=0, copy=False)
    assert msg["content"] == {"a": 1}
    session.send(sender, "from-kw", content={"b": 2}, buffers=[np.arange(10**5)])
    _, msg = upstream.recv(receiver, mode=0, copy=False)
    assert msg["content"] == {"b": 2}
    assert np.array_equal(np.frombuffer(msg["buffers"][0], dtype=int), np.arange(10**5))


def test_ipykernel_inprocess_dummy_socket(session):
    from ipykernel.inprocess.socket import DummySocket

    copy = False  # it queues zmq.Frames whatever the copy flag: ipykernel reads with copy=False

    dummy = DummySocket(context=zmq.Context.instance())
    session.send(dummy, "inprocess", content={"z": 26}, buffers=[np.arange(10**5)])
    _, msg = session.recv(dummy, copy=copy)
    assert msg["content"] == {"z": 26}
    assert np.array_equal(np.frombuffer(msg["buffers"][0], dtype=int), np.arange(10**5))
    assert dummy.queue.empty()
