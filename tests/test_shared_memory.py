"""Big buffers through shared memory between Sessions on one host, on both cores."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from kernelwire import _shm
from kernelwire.serialize import deserialize_object, serialize_object

pytestmark = pytest.mark.skipif(not _shm.supported(), reason="shared memory needs Linux")

KEY = b"shared-memory-key"
THRESHOLD = 1 << 16


@pytest.fixture
def pair():
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    port = a.bind_to_random_port("tcp://127.0.0.1")
    b.connect(f"tcp://127.0.0.1:{port}")
    yield a, b
    a.close(linger=0)
    b.close(linger=0)


@pytest.fixture
def sessions(Session_):
    made = []

    def make(**kwargs):
        kwargs.setdefault("key", KEY)
        kwargs.setdefault("shared_memory_threshold", THRESHOLD)
        s = Session_(**kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        if s.shared_memory is not None:
            s.shared_memory.release_all()


def own_segments() -> set[str]:
    pid = f"-{os.getpid()}-"
    return {n for n in _shm.live_segments() if pid in n}


def roundtrip(sender, receiver, pair, buffers, msg_type="data_request", copy=False):
    a, b = pair
    sent = sender.send(a, msg_type, {"n": len(buffers)}, buffers=buffers)
    _, msg = receiver.recv(b, mode=0, copy=copy)
    return sent, msg


ARRAYS = {
    "float64 C": np.arange(100_000, dtype=np.float64),
    "int32 Fortran": np.asfortranarray(np.arange(120_000, dtype=np.int32).reshape(300, 400)),
    "complex128 2-D": (np.arange(40_000) * (1 + 2j)).reshape(200, 200),
    "bool": np.arange(200_000) % 3 == 0,
    "structured": np.zeros(20_000, dtype=[("a", "<i8"), ("b", "<f4")]),
    "big-endian": np.arange(30_000, dtype=">u4"),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_arrays_arrive_with_their_values_dtypes_and_orders(sessions, pair, name):
    sender, receiver = sessions(), sessions()
    array = ARRAYS[name]
    frames = serialize_object({"x": array, "small": np.arange(3)})
    sent, msg = roundtrip(sender, receiver, pair, frames)
    got, rest = deserialize_object(msg["buffers"])
    assert rest == []
    assert got["x"].dtype == array.dtype and got["x"].shape == array.shape
    assert got["x"].flags.f_contiguous == array.flags.f_contiguous
    assert np.array_equal(got["x"], array) and np.array_equal(got["small"], np.arange(3))
    assert "kernelwire_shm" not in msg["header"]
    assert len(own_segments()) == 1  # the big buffer went through one segment
    assert "kernelwire_shm" not in sent["header"]  # the caller's message is left alone


def test_small_buffers_stay_frames(sessions, pair):
    sender, receiver = sessions(), sessions()
    _, msg = roundtrip(sender, receiver, pair, [b"x" * (THRESHOLD - 1)])
    assert bytes(msg["buffers"][0]) == b"x" * (THRESHOLD - 1)
    assert own_segments() == set()


def test_the_sender_may_modify_its_array_after_send(sessions, pair):
    sender, receiver = sessions(), sessions()
    array = np.ones(1 << 18)
    a, b = pair
    sender.send(a, "data_request", {}, buffers=[array])
    array[:] = -1  # send copied it once: the receiver must not see this
    del array
    _, msg = receiver.recv(b, mode=0, copy=False)
    assert np.all(np.frombuffer(msg["buffers"][0]) == 1)


def test_receivers_writes_stay_their_own(sessions, pair):
    sender, first, second = sessions(), sessions(), sessions()
    array = np.arange(1 << 17, dtype=np.int64)
    a, b = pair
    with sender.shared_memory.batch():  # one segment for both receivers
        sender.send(a, "data_request", {}, buffers=[array])
        sender.send(a, "data_request", {}, buffers=[array])
    assert len(own_segments()) == 1
    _, m1 = first.recv(b, mode=0, copy=False)
    _, m2 = second.recv(b, mode=0, copy=False)
    mine = np.frombuffer(m1["buffers"][0], np.int64)
    assert mine.flags.writeable  # copy-on-write: a receiver may write
    mine[:10] = -7
    theirs = np.frombuffer(m2["buffers"][0], np.int64)
    assert np.array_equal(theirs, array)
    assert mine[0] == -7


def test_a_buffer_sent_again_outside_a_batch_is_copied_again(sessions, pair):
    sender, receiver = sessions(), sessions()
    array = np.zeros(1 << 16)
    view = memoryview(array)
    a, b = pair
    sender.send(a, "data_request", {}, buffers=[view])
    array[:] = 5  # the same memoryview object, new contents
    sender.send(a, "data_request", {}, buffers=[view])
    _, m1 = receiver.recv(b, mode=0, copy=False)
    _, m2 = receiver.recv(b, mode=0, copy=False)
    assert np.all(np.frombuffer(m1["buffers"][0]) == 0)
    assert np.all(np.frombuffer(m2["buffers"][0]) == 5)


def test_a_receiver_with_it_off_refuses_clearly(sessions, pair):
    sender, receiver = sessions(), sessions(shared_memory_threshold=0)
    a, b = pair
    sender.send(a, "data_request", {}, buffers=[np.ones(1 << 16)])
    with pytest.raises(ValueError, match="shared_memory_threshold=0"):
        receiver.recv(b, mode=0, copy=False)


def test_a_request_segment_goes_after_its_reply(sessions, pair):
    requester, replier = sessions(), sessions()
    requester.shared_memory.grace = 0.0
    a, b = pair
    requester.send(a, "data_request", {}, buffers=[np.ones(1 << 16)])
    _, request = replier.recv(b, mode=0, copy=False)
    held = own_segments()
    assert len(held) == 1
    time.sleep(1.2)
    assert own_segments() == held  # no reply yet: it stays, however long
    replier.send(b, "data_reply", {}, parent=request)
    requester.recv(a, mode=0)
    deadline = time.monotonic() + 5
    while own_segments() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert own_segments() == set()
    assert np.all(np.frombuffer(request["buffers"][0]) == 1)  # the mapping outlives the name


def test_other_messages_linger_then_go(sessions, pair):
    sender, receiver = sessions(shared_memory_linger=0.5), sessions()
    _, msg = roundtrip(sender, receiver, pair, [np.ones(1 << 16)], msg_type="data_reply")
    deadline = time.monotonic() + 5
    while own_segments() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert own_segments() == set()
    assert np.all(np.frombuffer(msg["buffers"][0]) == 1)


# -- who gets shared memory -------------------------------------------------------


def test_known_peers_get_frames_until_they_said_they_can(sessions, pair):
    client = sessions(shared_memory_peers="known")
    engine = sessions(shared_memory_peers="known")
    ident = engine.bsession
    a, b = pair
    client.send(a, "data_request", {}, buffers=[np.ones(1 << 16)], ident=[ident])
    assert own_segments() == set()  # not known yet: a frame
    _, request = engine.recv(b, mode=0, copy=False)
    assert np.all(np.frombuffer(request["buffers"][0]) == 1)
    # the engine's reply to a kernelwire request on this host may use shared memory
    engine.send(b, "data_reply", {}, parent=request, buffers=[np.ones(1 << 16)])
    assert len(own_segments()) == 1
    _, reply = client.recv(a, mode=0, copy=False)
    assert ident in client.shared_memory.learned  # learned from the signed reply
    client.send(a, "data_request", {}, buffers=[np.ones(1 << 16)], ident=[ident])
    assert len(own_segments()) == 2
    client.send(a, "data_request", {}, buffers=[np.ones(1 << 16)], ident=[b"stranger"])
    assert len(own_segments()) == 2


# -- security ---------------------------------------------------------------------------


def forged(session, descriptors, frames=(b"",)):
    """A message signed with the right key whose descriptors point elsewhere."""
    msg = session.msg("data_request", {})
    msg["header"]["kernelwire_shm"] = descriptors
    return session.serialize(msg)[1:] + list(frames)


@pytest.fixture
def segment():
    name = _shm.create_segment(memoryview(b"s" * 8192))
    yield name
    _shm.unlink(name)


def test_a_modified_descriptor_fails_the_signature(sessions, segment):
    sender, receiver = sessions(), sessions()
    frames = forged(sender, [[0, segment, 0, 8192]])
    header = json.loads(frames[1])
    header["kernelwire_shm"][0][3] = 4096
    frames[1] = json.dumps(header).encode()
    with pytest.raises(ValueError, match="Invalid Signature"):
        receiver.deserialize(frames)


def test_a_descriptor_without_a_signature_is_refused(sessions, segment):
    receiver = sessions()
    frames = forged(sessions(key=b""), [[0, segment, 0, 8192]])
    with pytest.raises(ValueError, match="Unsigned Message"):
        receiver.deserialize(frames)


@pytest.mark.parametrize(
    "descriptor, error",
    [
        ([0, "SEGMENT", 0, 16384], "asks for bytes 0..16384 of a 8192-byte segment"),
        ([0, "SEGMENT", 8000, 500], "asks for bytes"),
        ([0, "SEGMENT", -1, 10], "malformed"),
        ([0, "../../etc/passwd", 0, 10], "malformed"),
        ([0, "kernelwire-1-1-" + "0" * 32, 0, 10], "is gone"),
        ([3, "SEGMENT", 0, 10], "frame 3"),
        (["0", "SEGMENT", 0, 10], "frame '0'"),
        ([0, "SEGMENT", 0], "malformed"),
    ],
)
def test_bad_descriptors_are_clear_errors(sessions, segment, descriptor, error):
    receiver = sessions()
    descriptor = [segment if d == "SEGMENT" else d for d in descriptor]
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(".", r"\.")):
        receiver.deserialize(forged(receiver, [descriptor]))


def test_a_placeholder_frame_must_be_empty(sessions, segment):
    receiver = sessions()
    with pytest.raises(ValueError, match="not empty"):
        receiver.deserialize(forged(receiver, [[0, segment, 0, 10]], frames=[b"data"]))


def test_only_our_own_0600_segments_are_mapped(sessions, segment):
    receiver = sessions()
    path = os.path.join(_shm.SHM_DIR, segment)
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="mode 644"):
        receiver.deserialize(forged(receiver, [[0, segment, 0, 10]]))
    os.chmod(path, 0o600)
    if os.geteuid() == 0:
        os.chown(path, 65534, -1)
        with pytest.raises(ValueError, match="not owned by this user"):
            receiver.deserialize(forged(receiver, [[0, segment, 0, 10]]))
        os.chown(path, 0, -1)
    got = receiver.deserialize(forged(receiver, [[0, segment, 0, 10]]))
    assert bytes(got["buffers"][0]) == b"s" * 10


def test_a_symlink_is_not_followed(sessions, tmp_path):
    receiver = sessions()
    target = tmp_path / "secret"
    target.write_bytes(b"x" * 100)
    name = "kernelwire-1-1-" + "a" * 32
    os.symlink(target, os.path.join(_shm.SHM_DIR, name))
    try:
        with pytest.raises(ValueError, match="cannot open"):
            receiver.deserialize(forged(receiver, [[0, name, 0, 10]]))
    finally:
        os.unlink(os.path.join(_shm.SHM_DIR, name))


# -- the bound and a full /dev/shm ------------------------------------------------------


def test_past_the_bound_buffers_go_as_frames_and_it_is_logged(sessions, pair, caplog):
    sender, receiver = sessions(shared_memory_limit=3 << 16), sessions()
    a, b = pair
    caplog.set_level(logging.WARNING, "kernelwire.shared_memory")
    for value in range(5):
        sender.send(a, "data_request", {}, buffers=[np.full(1 << 13, value, np.float64)])
    for value in range(5):
        _, msg = receiver.recv(b, mode=0, copy=False)
        assert np.all(np.frombuffer(msg["buffers"][0]) == value)
    assert len(own_segments()) == 3
    assert sender.shared_memory.fallbacks == 2
    assert "sent as a frame" in caplog.text and "limit" in caplog.text


@pytest.fixture
def small_shm_dir(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "shm"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=1777", "tmpfs", str(mount)], check=True
    )
    monkeypatch.setattr(_shm, "SHM_DIR", str(mount))
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_shared_memory_mount_falls_back_to_frames(sessions, pair, small_shm_dir, caplog):
    sender, receiver = sessions(shared_memory_limit=1 << 30), sessions()
    caplog.set_level(logging.WARNING, "kernelwire.shared_memory")
    a, b = pair
    big = np.arange(1 << 18, dtype=np.float64)  # 2 MB, the mount holds 1 MB
    small = np.arange(1 << 14, dtype=np.float64)
    sender.send(a, "data_request", {}, buffers=[big, small])
    _, msg = receiver.recv(b, mode=0, copy=False)
    assert np.array_equal(np.frombuffer(msg["buffers"][0]), big)
    assert np.array_equal(np.frombuffer(msg["buffers"][1]), small)
    assert sender.shared_memory.fallbacks == 1
    assert "ENOSPC" in caplog.text
    assert len(os.listdir(small_shm_dir)) == 1  # the small one; nothing half-written stays
    sender.shared_memory.release_all()
    assert os.listdir(small_shm_dir) == []


# -- death -----------------------------------------------------------------------------

SENDER = """
import os, signal, sys, numpy as np, zmq
from kernelwire import Session
s = Session.pinned(core=sys.argv[2])(key=b"k", shared_memory_threshold=1)
sock = zmq.Context().socket(zmq.PUSH)
sock.connect(sys.argv[1])
s.send(sock, "data_request", {}, buffers=[np.ones(1 << 20)])
s.send(sock, "data_reply", {}, buffers=[np.ones(1 << 20)])
sock.close(linger=5000)
print(os.getpid(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_of_the_sender_leaves_nothing_after_the_next_start(sessions, impl):
    pull = zmq.Context.instance().socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    proc = subprocess.run(
        [sys.executable, "-c", SENDER, f"tcp://127.0.0.1:{port}", impl],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = proc.stdout.strip()
    left = [n for n in _shm.live_segments() if f"-{pid}-" in n]
    assert len(left) == 2  # SIGKILL ran no clean-up
    receiver = sessions(key=b"k")  # a Session start sweeps what dead processes left
    assert [n for n in _shm.live_segments() if f"-{pid}-" in n] == []
    pull.poll(5000)
    with pytest.raises(ValueError, match="is gone"):  # stale: a clear error, not garbage
        receiver.deserialize(pull.recv_multipart()[1:])
    pull.close(linger=0)


RECEIVER = """
import sys, time, numpy as np, zmq
from kernelwire import Session
s = Session.pinned(core=sys.argv[2])(key=b"k", shared_memory_threshold=1)
sock = zmq.Context().socket(zmq.PULL)
sock.connect(sys.argv[1])
_, msg = s.recv(sock, mode=0, copy=False)
data = np.frombuffer(msg["buffers"][0])
print(float(data[:1000].sum()), flush=True)
time.sleep(60)
"""


def test_sigkill_of_a_receiver_mid_transfer(sessions, impl):
    sender = sessions(key=b"k", shared_memory_threshold=1)
    push = zmq.Context.instance().socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, f"tcp://127.0.0.1:{port}", impl],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sender.send(push, "data_request", {}, buffers=[np.ones(1 << 20)])
        assert proc.stdout.readline().strip() == "1000.0"  # it mapped and read it
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        push.close(linger=0)
    assert len(own_segments()) == 1  # the sender still holds its own segment ...
    sender.shared_memory.release_all()
    assert own_segments() == set()  # ... and lets it go; the dead mapping held nothing


def test_the_cores_write_the_same_wire(pair):
    from conftest import IMPLEMENTATIONS, session_class

    headers = []
    for impl in IMPLEMENTATIONS:
        s = session_class(impl)(key=KEY, shared_memory_threshold=THRESHOLD, session="s")
        frames = s.serialize(s.msg("x", {}))
        wire_msg, wire_buffers = s.shared_memory.outgoing(
            s.msg("x_request", {}), [np.ones(1 << 14), b"small"], None
        )
        headers.append((sorted(wire_msg["header"]), len(wire_buffers), len(frames)))
        s.shared_memory.release_all()
    assert all(h == headers[0] for h in headers)


# -- kernelwire.shared: arrays that are sent without any copy ----------------------------


def test_a_shared_array_is_sent_without_a_copy(sessions, pair):
    from kernelwire import shared

    sender, receiver = sessions(), sessions()
    array = shared.empty((512, 256), np.float64)
    array[...] = np.arange(array.size).reshape(array.shape)
    assert shared.is_shared(array) and shared.is_shared(array[100:]) and not shared.is_shared(1)
    (segment,) = own_segments()
    frames = serialize_object(array[100:])  # a view at an offset in the segment
    _, msg = roundtrip(sender, receiver, pair, frames)
    assert own_segments() == {segment}  # no new segment: nothing was copied
    got, _ = deserialize_object(msg["buffers"])
    assert np.array_equal(got, array[100:])
    got[0, 0] = -1.0  # the receiver's writes stay its own
    assert array[100, 0] == 100 * 256
    array[-1, -1] = 42.0  # the sender's show (documented: sharing)
    assert got[-1, -1] == 42.0


def test_a_shared_array_goes_when_unused(sessions, pair):
    from kernelwire import shared

    array = shared.asarray(np.ones(1 << 14))
    assert shared.asarray(array) is array
    (segment,) = own_segments()
    del array
    assert own_segments() == set()
    sender, receiver = sessions(), sessions()
    array = shared.asarray(np.ones(1 << 14))
    a, b = pair
    sender.send(a, "data_request", {}, buffers=[array])
    del array  # the Session still holds it for the receiver
    assert len(own_segments()) == 1
    _, msg = receiver.recv(b, mode=0, copy=False)
    sender.shared_memory.release_all()
    assert own_segments() == set()
    assert np.all(np.frombuffer(msg["buffers"][0]) == 1)  # the mapping outlives the name


def test_shared_empty_reports_a_full_mount(small_shm_dir):
    from kernelwire import shared

    with pytest.raises(OSError):
        shared.empty(1 << 20, np.float64)  # 8 MB in a 1 MB mount
    assert os.listdir(small_shm_dir) == []


def test_the_benchmark_runs_every_contender(tmp_path):
    out = tmp_path / "samples.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernelwire.bench.shared_memory",
            "--parts",
            "session",
            "--sizes",
            "1MB",
            "--rounds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    contenders = {s["contender"] for s in json.loads(out.read_text())["samples"]}
    assert {
        "kernelwire frames, tcp",
        "kernelwire frames, ipc",
        "kernelwire shared memory (copy at send)",
        "kernelwire shared memory (kernelwire.shared array)",
        "floor: memcpy, warm memory",
        "floor: copy into fresh shared memory",
    } <= contenders
    assert "kernelwire shared memory (copy at send)" in proc.stdout


def test_a_forked_child_leaves_its_parents_segments(sessions, pair):
    sender = sessions()
    a, _ = pair
    sender.send(a, "data_request", {}, buffers=[np.ones(1 << 14)])
    held = own_segments()
    assert len(held) == 1
    pid = os.fork()
    if pid == 0:  # the child releases what it inherited, then exits without clean-up
        sender.shared_memory.release_all()
        os._exit(0)
    os.waitpid(pid, 0)
    assert own_segments() == held
