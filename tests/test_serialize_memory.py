"""1 GB of nested arrays through a real zmq socket pair: no copy on either side.

Sixteen messages, each a nested dict of four 16 MiB arrays (1 GiB in all),
go through Session.send / Session.recv(copy=False) over tcp on 127.0.0.1 on
both cores. The arrays are made once; Python-level allocations during the
whole loop (tracemalloc sees pickle buffers and numpy data, not libzmq's
receive buffers) must stay far below one array, and the received arrays
must view the received frames.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import zmq

import kernelwire

MIB = 1 << 20
ARRAY_BYTES = 16 * MIB
MESSAGES = 16
PER_MESSAGE = 4
TOTAL = MESSAGES * PER_MESSAGE * ARRAY_BYTES  # 1 GiB


@pytest.fixture
def push_pull():
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    pull.rcvtimeo = 30_000
    yield push, pull
    push.close(linger=0)
    pull.close(linger=0)
    ctx.term()


def test_gigabyte_of_nested_arrays_is_never_copied(Session_, push_pull):
    push, pull = push_pull
    sender, receiver = Session_(key=b"k"), Session_(key=b"k")
    arrays = [np.full(ARRAY_BYTES // 8, i, dtype=np.float64) for i in range(PER_MESSAGE)]
    payload = {
        "layers": [
            {"w": arrays[0], "b": [arrays[1]]},
            {"deep": {"x": arrays[2], "y": (arrays[3],)}},
        ],
        "step": 0,
    }
    sent = 0
    tracemalloc.start()
    try:
        for step in range(MESSAGES):
            payload["step"] = step
            frames = kernelwire.serialize_object(payload)
            assert len(frames) == 1 + PER_MESSAGE
            sender.send(push, "data", {"step": step}, buffers=frames)
            del frames
            _, msg = receiver.recv(pull, mode=0, copy=False)
            obj, rest = kernelwire.deserialize_object(msg["buffers"])
            assert rest == [] and obj["step"] == step
            received = [obj["layers"][0]["w"], obj["layers"][0]["b"][0],
                        obj["layers"][1]["deep"]["x"], obj["layers"][1]["deep"]["y"][0]]
            for i, arr in enumerate(received):
                assert arr.nbytes == ARRAY_BYTES and arr[0] == i and arr[-1] == i
                assert arr.flags.writeable  # a view of a received (writable) frame
                assert not arr.flags.owndata
                sent += arr.nbytes
            del obj, received, msg
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent == TOTAL
    # a single copy of a single array would already show as 16 MiB
    assert peak < ARRAY_BYTES // 4, f"traced peak {peak / MIB:.1f} MiB while sending 1 GiB"
    print(f"1 GiB sent, traced Python allocation peak {peak / MIB:.2f} MiB")


def test_received_array_views_the_zmq_frame(Session_, push_pull):
    push, pull = push_pull
    sender, receiver = Session_(key=b"k"), Session_(key=b"k")
    arr = np.arange(MIB, dtype=np.float64)
    sender.send(push, "data", {}, buffers=kernelwire.serialize_object({"a": [arr]}))
    _, msg = receiver.recv(pull, mode=0, copy=False)
    out = kernelwire.deserialize_object(msg["buffers"])[0]["a"][0]
    np.testing.assert_array_equal(out, arr)
    chain, obj = [], out
    while obj is not None:
        chain.append(obj)
        obj = obj.base if isinstance(obj, np.ndarray) else getattr(obj, "obj", None)
    # the object the session received the frame into (a zmq.Frame or kernelwire's own)
    frame = msg["buffers"][1].obj
    assert frame is not None and any(o is frame for o in chain), [type(o) for o in chain]
