"""send_frames / recv_frames directly: API, errors, and never crashing the interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import zmq
from jupyter_client import session as jc_session
from zmq.eventloop.zmqstream import ZMQStream
from zmqio_fixtures import ZMQIO, needs_pthread_kill, signal_main_after, socket_pair


@pytest.fixture(params=list(ZMQIO))
def zmqio(request):
    return ZMQIO[request.param]


@pytest.fixture
def pair(tmp_path):
    ctx = zmq.Context()
    made = []

    def make(transport="inproc", kinds=(zmq.PUSH, zmq.PULL)):
        sockets = socket_pair(ctx, transport, tmp_path, kinds)
        made.extend(sockets)
        return sockets

    yield make
    for sock in made:
        sock.close(linger=0)
    ctx.term()


def test_both_modules_expose_the_same_names():
    names = {"send_frames", "recv_frames", "supports", "raw_path_available", "IMPLEMENTATION"}
    for module in ZMQIO.values():
        assert names <= set(dir(module)), module


def test_compiled_module_finds_pyzmqs_libzmq():
    compiled = ZMQIO.get("cython")
    if compiled is None:
        pytest.skip("the extension is not built")
    if sys.platform.startswith(("linux", "darwin")):
        assert compiled.raw_path_available, compiled.unavailable_reason


def test_supports_only_exact_sync_sockets(zmqio, pair):
    sender, _ = pair()
    assert zmqio.supports(sender) is (zmqio.IMPLEMENTATION == "pure" or zmqio.raw_path_available)

    class MySocket(zmq.Socket):
        pass

    ctx = zmq.Context()
    try:
        sub = MySocket(ctx, zmq.PUSH)
        stream = ZMQStream(ctx.socket(zmq.PUSH))
        assert not zmqio.supports(sub)
        assert not zmqio.supports(stream)
        assert not zmqio.supports(object())
        stream.close()
        sub.close()
    finally:
        ctx.term()


@pytest.mark.parametrize("copy", [True, False])
def test_frames_round_trip(zmqio, pair, copy):
    sender, receiver = pair("tcp")
    frames = [b"", b"a", bytearray(b"bc"), memoryview(b"def"), np.arange(50_000, dtype=np.int32)]
    assert zmqio.send_frames(sender, frames, 1000, False) is jc_session.DONE
    got = zmqio.recv_frames(receiver, 0, copy)
    assert len(got) == len(frames)
    for g, f in zip(got, frames, strict=True):
        want = memoryview(f).cast("B").tobytes()
        if copy:
            assert type(g) is bytes and g == want
        else:
            # what jupyter_client uses of a zmq.Frame
            assert g.bytes == want
            assert bytes(g.buffer) == want
            assert len(g) == len(want)
            assert memoryview(g).nbytes == len(want)


def test_received_frames_are_writable_views_of_the_message(zmqio, pair):
    sender, receiver = pair("tcp")
    zmqio.send_frames(sender, [np.zeros(100_000)], 1, False)
    (frame,) = zmqio.recv_frames(receiver, 0, False)
    view = memoryview(frame)
    array = np.frombuffer(view, dtype=np.float64)
    array[0] = 7.0  # writable, as a zmq.Frame
    assert np.frombuffer(frame, dtype=np.float64)[0] == 7.0
    assert array.ctypes.data == np.frombuffer(memoryview(frame), dtype=np.uint8).ctypes.data
    del frame
    assert array[0] == 7.0  # the view keeps the message alive


def test_non_buffer_frame_raises_before_anything_is_sent(zmqio, pair):
    sender, receiver = pair()
    with pytest.raises(TypeError):
        zmqio.send_frames(sender, [b"first", 12345, b"last"], 1000, False)
    zmqio.send_frames(sender, [b"whole"], 1000, False)
    assert zmqio.recv_frames(receiver, 0, True) == [b"whole"]


def test_noblock_and_timeout_raise_again(zmqio, pair):
    _, receiver = pair()
    with pytest.raises(zmq.Again):
        zmqio.recv_frames(receiver, zmq.NOBLOCK, True)
    receiver.rcvtimeo = 20
    with pytest.raises(zmq.Again):
        zmqio.recv_frames(receiver, 0, False)


def test_send_timeout_raises_again(zmqio, pair):
    sender = pair()[0]
    sender.close()
    ctx = zmq.Context()
    try:
        lonely = ctx.socket(zmq.PUSH)  # no peer: a send would block forever
        lonely.sndtimeo = 20
        with pytest.raises(zmq.Again):
            zmqio.send_frames(lonely, [np.zeros(100_000)], 1000, False)
        with pytest.raises(zmq.Again):
            zmqio.send_frames(lonely, [b"x"], 1000, False, zmq.DONTWAIT)
        lonely.close(linger=0)
    finally:
        ctx.term()


@needs_pthread_kill
@pytest.mark.parametrize("size", [10, 100_000], ids=["copied", "zero-copy"])
def test_ctrl_c_interrupts_blocking_send_and_releases_the_frame(zmqio, size):
    ctx = zmq.Context()
    lonely = ctx.socket(zmq.PUSH)  # no peer: a send blocks until interrupted
    lonely.linger = 0
    array = np.zeros(size, dtype=np.uint8)
    before = zmqio.stats() if hasattr(zmqio, "stats") else None
    try:
        start = time.monotonic()
        thread = signal_main_after(0.2, signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            zmqio.send_frames(lonely, [array], 1000, False)
        assert time.monotonic() - start < 5
        thread.join()
        if before is not None:  # the interrupted zero-copy frame went back at once
            created, released = zmqio.stats()
            assert created - before[0] == (1 if size >= 1000 else 0)
            assert released - before[1] == created - before[0]
    finally:
        lonely.close()
        ctx.term()


@needs_pthread_kill
@pytest.mark.parametrize("size", [10, 100_000], ids=["copied", "zero-copy"])
def test_signal_without_exception_does_not_end_send(zmqio, tmp_path, size):
    ctx = zmq.Context()
    sender = ctx.socket(zmq.PUSH)
    sender.linger = 0
    sender.immediate = True  # no queueing before the peer is there: the send blocks
    receiver = ctx.socket(zmq.PULL)
    receiver.linger = 0
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda *args: seen.append(args[0]))
    try:
        signal_main_after(0.1, signal.SIGUSR1)
        address = f"ipc://{tmp_path}/late.sock"

        def peer_later():  # the send can only finish once the peer is there
            time.sleep(0.4)
            receiver.bind(address)

        sender.connect(address)
        late = threading.Thread(target=peer_later)
        late.start()
        zmqio.send_frames(sender, [b"x" * size], 1000, False)
        late.join()
        assert zmqio.recv_frames(receiver, 0, True) == [b"x" * size]
    finally:
        signal.signal(signal.SIGUSR1, previous)
        sender.close()
        receiver.close()
        ctx.term()
    assert seen == [signal.SIGUSR1]


def test_closed_socket_errors_like_pyzmq(zmqio, pair):
    sender, receiver = pair()
    sender.close()
    receiver.close()
    for call in (
        lambda: zmqio.send_frames(sender, [b"x"], 1000, False),
        lambda: zmqio.send_frames(sender, [np.zeros(10**5)], 1, False),
        lambda: zmqio.recv_frames(receiver, 0, True),
    ):
        with pytest.raises(zmq.ZMQError) as info:
            call()
        assert info.value.errno == zmq.ENOTSOCK


def test_terminated_context_raises_context_terminated(zmqio):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.linger = 0
    import threading

    def term():
        ctx.term()

    t = threading.Thread(target=term)
    t.start()
    with pytest.raises(zmq.ContextTerminated):
        zmqio.recv_frames(sock, 0, True)
    sock.close()
    t.join()


def test_tracked_pyzmq_frame_still_tracks(zmqio, pair):
    sender, receiver = pair()
    frame = zmq.Frame(b"hi there", track=True)
    tracker = zmqio.send_frames(sender, [b"a", frame], 1, True)
    assert isinstance(tracker, zmq.MessageTracker)
    zmqio.recv_frames(receiver, 0, True)
    tracker.wait(5)


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, capture_output=True, text=True, timeout=60,
    )


# Only the compiled path: pyzmq's own zero-copy (the pure twin, and
# jupyter_client) aborts here, libzmq writing buffers freed at exit
# ("Bad address (src/tcp.cpp:227)").  The compiled path keeps them.
@pytest.mark.parametrize("impl", [name for name in ZMQIO if name != "pure"])
def test_exit_with_zero_copy_frames_queued_does_not_crash(impl):
    # frames stay queued (no peer reads them) while the interpreter exits
    out = _run(f"""
        import numpy as np, zmq
        from zmqio_fixtures import ZMQIO
        io = ZMQIO[{impl!r}]
        ctx = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        push.linger = 0
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{{port}}")
        for i in range(50):
            io.send_frames(push, [b"h", np.full(200_000, i)], 1000, False)
        print("sent")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sent"


@pytest.mark.parametrize("impl", list(ZMQIO))
def test_destroying_context_with_frames_queued_releases_them(impl):
    out = _run(f"""
        import gc, time, weakref, numpy as np, zmq
        from zmqio_fixtures import ZMQIO
        io = ZMQIO[{impl!r}]
        ctx = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        pull = ctx.socket(zmq.PULL)
        pull.bind("inproc://queued")
        push.connect("inproc://queued")
        refs = []
        for i in range(20):
            a = np.full(100_000, i)
            refs.append(weakref.ref(a))
            io.send_frames(push, [a], 1000, False)
            del a
        ctx.destroy(linger=0)
        deadline = time.monotonic() + 10
        while any(r() is not None for r in refs) and time.monotonic() < deadline:
            if hasattr(io, "stats"):
                io.stats()
            gc.collect()
            time.sleep(0.01)
        print(sum(r() is not None for r in refs))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_compiled_module_exports_its_c_api():
    compiled = ZMQIO.get("cython")
    if compiled is None:
        pytest.skip("the extension is not built")
    import ctypes

    is_valid = ctypes.pythonapi.PyCapsule_IsValid
    is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
    assert is_valid(compiled.C_API, b"kernelwire._zmqio.C_API") == 1


def test_released_buffers_are_dropped_without_another_zmq_call(pair):
    compiled = ZMQIO.get("cython")
    if compiled is None or not compiled.raw_path_available:
        pytest.skip("the raw C path is not available")
    import time
    import weakref

    sender, receiver = pair("tcp")
    array = np.zeros(100_000)
    ref = weakref.ref(array)
    compiled.send_frames(sender, [array], 1000, False)
    del array
    compiled.recv_frames(receiver, 0, True)
    # only Python bytecode from here: the pending call scheduled by libzmq's
    # free callback must drop the buffer
    deadline = time.monotonic() + 10
    while ref() is not None and time.monotonic() < deadline:
        sum(range(1000))
    assert ref() is None


def test_threshold_zero_sends_everything_and_releases_everything(zmqio, pair):
    import gc
    import time
    import weakref

    sender, receiver = pair("tcp")
    array = np.arange(1000)
    ref = weakref.ref(array)
    tracker = zmqio.send_frames(sender, [b"", bytearray(), array], 0, True)
    assert zmqio.recv_frames(receiver, 0, True) == [b"", b"", array.tobytes()]
    del array
    tracker.wait(5)
    deadline = time.monotonic() + 5
    while ref() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert ref() is None


def test_compiled_classes_made_from_python_do_not_crash():
    # ReceivedFrame and TrackState are made by recv_frames / send_frames;
    # one made directly is an empty frame and a finished tracker, never an
    # uninitialised libzmq message or counter (in a child: that would abort)
    compiled = ZMQIO.get("cython")
    if compiled is None or not compiled.raw_path_available:
        pytest.skip("the raw C path is not available")
    out = _run("""
        from kernelwire import _zmqio
        frame = _zmqio.ReceivedFrame()
        assert (len(frame), frame.bytes, bytes(frame.buffer), frame.more) == (0, b"", b"", False)
        assert _zmqio.TrackState().done()
        assert _zmqio.ZeroCopyTracker(_zmqio.TrackState()).done
        print("ok")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
