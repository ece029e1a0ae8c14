"""kernelwire.serialize_object and friends: round trips, frame shapes, no copies."""

from __future__ import annotations

import dataclasses
import functools
import pickle
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import kernelwire
from kernelwire import (
    deserialize_object,
    pack_apply_message,
    serialize_object,
    unpack_apply_message,
)


def received(frames: list) -> list:
    """Frames as a receiver holds them: writable memoryviews of fresh memory."""
    return [memoryview(bytearray(memoryview(f).cast("B"))) for f in frames]


def roundtrip(obj, **kw):
    frames = serialize_object(obj, **kw)
    out, rest = deserialize_object(received(frames))
    assert rest == []
    return out


def base_chain(arr) -> list:
    chain = []
    obj = arr
    while obj is not None:
        chain.append(obj)
        attr = "base" if isinstance(obj, np.ndarray) else "obj"
        obj = getattr(obj, attr, None)
    return chain


def reaches(arr, frame) -> bool:
    """Whether ``arr`` views the memory of ``frame`` (a memoryview's exporter counts)."""
    target = frame.obj if isinstance(frame, memoryview) else frame
    return any(o is target for o in base_chain(arr))


def assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype.hasobject:
            for x, y in zip(a.ravel(), b.ravel(), strict=True):
                assert_same(x, y)
        else:
            assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


MB = np.arange(128 * 1024, dtype=np.float64)  # 1 MiB


# -- arrays of every kind -----------------------------------------------------

ARRAYS = {
    "float64": lambda: np.random.default_rng(1).random(5000),
    "uint8-2d": lambda: np.arange(6000, dtype=np.uint8).reshape(60, 100),
    "big-endian": lambda: np.arange(3000, dtype=">i4"),
    "structured": lambda: np.zeros(500, dtype=[("a", "<f8"), ("b", ">i2"), ("s", "S5")]),
    "fortran": lambda: np.asfortranarray(np.arange(4000.0).reshape(40, 100)),
    "complex": lambda: np.arange(2000, dtype=np.complex128),
    "bool": lambda: np.arange(5000) % 3 == 0,
    "datetime": lambda: np.arange(2000).astype("datetime64[s]"),
    "unicode": lambda: np.array(["héllo"] * 400),
    "zero-d": lambda: np.array(3.5),
    "empty": lambda: np.zeros((0, 7)),
    "object": lambda: np.array([{"k": np.arange(300.0)}, None, "x"], dtype=object),
}


@pytest.mark.parametrize("kind", list(ARRAYS))
def test_array_roundtrip(kind):
    arr = ARRAYS[kind]()
    out = roundtrip(arr)
    assert_same(arr, out)
    assert out.flags.f_contiguous == arr.flags.f_contiguous
    assert out.flags.c_contiguous == arr.flags.c_contiguous


# object arrays are pickled item by item (their nested arrays are frames: test_array_roundtrip)
LARGE = [k for k in ARRAYS if ARRAYS[k]().nbytes > 1024 and not ARRAYS[k]().dtype.hasobject]


@pytest.mark.parametrize("kind", LARGE)
def test_large_array_is_a_frame_and_a_view(kind):
    arr = ARRAYS[kind]()
    frames = serialize_object(arr)
    assert len(frames) == 2
    # the frame is the array's memory, not a copy
    assert np.shares_memory(np.frombuffer(frames[1], np.uint8), arr.ravel(order="K").view(np.uint8))
    rframes = received(frames)
    out, _ = deserialize_object(rframes)
    assert reaches(out, rframes[1])
    assert out.flags.writeable


def test_received_array_readonly_when_frame_is():
    arr = np.arange(1000.0)
    frames = [memoryview(bytes(memoryview(f).cast("B"))) for f in serialize_object(arr)]
    out, _ = deserialize_object(frames)
    assert not out.flags.writeable
    assert reaches(out, frames[1])


def test_small_buffers_stay_in_band():
    obj = {"a": np.arange(10), "b": b"x" * 1024, "m": memoryview(b"y" * 100)}
    frames = serialize_object(obj)
    assert len(frames) == 1
    out = roundtrip(obj)
    assert out["b"] == obj["b"] and out["m"].tobytes() == b"y" * 100
    assert_array_equal(out["a"], obj["a"])


def test_threshold_is_respected():
    arr = np.ones(256)  # 2 KiB
    assert len(serialize_object(arr, buffer_threshold=2048)) == 1
    assert len(serialize_object(arr, buffer_threshold=2047)) == 2


def test_non_contiguous_array_copied_once(monkeypatch):
    base = np.arange(200_000.0).reshape(400, 500)
    view = base[::2, ::3]
    copies = []
    real_array = np.array

    def counting_array(*args, **kw):
        copies.append(args[0] is view)
        return real_array(*args, **kw)

    monkeypatch.setattr(np, "array", counting_array)
    frames = serialize_object({"v": view})
    monkeypatch.undo()
    assert copies == [True]
    assert len(frames) == 2 and memoryview(frames[1]).nbytes == view.nbytes
    out = roundtrip({"v": view})["v"]
    assert_array_equal(out, view)
    # the frame itself carries the only copy: the pickle holds no data
    assert len(frames[0]) < 1024


# -- nested structures ----------------------------------------------------------


@dataclasses.dataclass
class Holder:
    name: str
    weights: np.ndarray
    extra: list


class Plain:
    def __init__(self, arr):
        self.arr = arr
        self.more = {"deep": [arr[:10], arr]}


class OwnBuffer:
    """Implements __reduce_ex__ with a PickleBuffer, the pickle-5 way."""

    def __init__(self, data: bytearray):
        self.data = data

    def __reduce_ex__(self, protocol):
        return type(self)._rebuild, (pickle.PickleBuffer(self.data),)

    @classmethod
    def _rebuild(cls, buf):
        return cls(buf)


def test_nested_arrays_at_any_depth_are_frames():
    a, b, c = MB.copy(), MB + 1, MB + 2
    obj = {"l1": [{"l2": [a, (b, {"l3": c})]}]}
    frames = serialize_object(obj)
    assert len(frames) == 4
    assert {memoryview(f).nbytes for f in frames[1:]} == {MB.nbytes}
    rframes = received(frames)
    out, _ = deserialize_object(rframes)
    assert_same(obj, out)
    got = [out["l1"][0]["l2"][0], out["l1"][0]["l2"][1][0], out["l1"][0]["l2"][1][1]["l3"]]
    for arr, frame in zip(got, rframes[1:], strict=True):
        assert reaches(arr, frame)


def test_container_of_many_items_still_sends_arrays_out_of_band():
    obj = [np.full(200, i, dtype=np.float64) for i in range(100)]  # 100 items > item_threshold
    frames = serialize_object(obj)
    assert len(frames) == 101
    assert_same(obj, roundtrip(obj))


def test_dataclass_and_object_attributes():
    h = Holder("h", MB.copy(), [MB[:5], {"x": MB + 3}])
    p = Plain(MB * 2)
    frames = serialize_object([h, p])
    assert len(frames) == 4  # h.weights, MB + 3, p.arr (p.more["deep"][1] is p.arr: once)
    out_h, out_p = roundtrip([h, p])
    assert out_h.name == "h"
    assert_array_equal(out_h.weights, h.weights)
    assert_array_equal(out_h.extra[1]["x"], h.extra[1]["x"])
    assert out_p.more["deep"][1] is out_p.arr  # shared references stay shared


def test_memoryview_bytearray_bytes_and_picklebuffer_objects():
    obj = {
        "mv": memoryview(np.arange(1000, dtype=np.int32)),
        "mv2d": memoryview(np.arange(2000.0).reshape(40, 50)),
        "strided_mv": memoryview(np.arange(4000.0))[::2],
        "ba": bytearray(b"q" * 5000),
        "by": b"r" * 5000,
        "nested": [[{"ba": bytearray(3000)}]],
        "own": OwnBuffer(bytearray(b"o" * 4000)),
    }
    frames = serialize_object(obj)
    assert len(frames) == 1 + 7
    out = roundtrip(obj)
    for key in ("mv", "mv2d", "strided_mv"):
        assert out[key].format == obj[key].format and out[key].shape == obj[key].shape
        assert out[key].tolist() == obj[key].tolist()
    assert type(out["ba"]) is bytearray and out["ba"] == obj["ba"]
    assert type(out["by"]) is bytes and out["by"] == obj["by"]
    assert out["nested"][0][0]["ba"] == bytearray(3000)
    assert bytes(out["own"].data) == bytes(obj["own"].data)


def test_sending_does_not_copy_memoryviews_and_bytearrays():
    ba = bytearray(b"s" * 10000)
    frames = serialize_object({"ba": ba, "mv": memoryview(ba)})
    assert len(frames) == 3
    for frame in frames[1:]:
        assert np.shares_memory(np.frombuffer(frame, np.uint8), np.frombuffer(ba, np.uint8))


@pytest.mark.needs("pandas", reason="it sends a pandas DataFrame")
def test_pandas_dataframe():
    import pandas as pd

    df = pd.DataFrame({"x": np.arange(10_000.0), "y": np.arange(10_000) % 7, "s": ["a"] * 10_000})
    frames = serialize_object({"df": df})
    assert len(frames) >= 3  # the numeric blocks travel as frames
    out = roundtrip({"df": df})["df"]
    pd.testing.assert_frame_equal(out, df)


# -- functions (cloudpickle) ---------------------------------------------------


@pytest.mark.needs("cloudpickle", reason="without IPython Parallel loaded, lambdas, closures and"
                   " local classes go through cloudpickle only")
def test_lambdas_closures_and_local_classes():
    offset = np.arange(2000.0)

    def closure(x):
        return x + offset

    class Local:
        def __init__(self):
            self.v = offset * 2

        def total(self):
            return float(self.v.sum())

    obj = {"lam": lambda x: x * 3, "closure": closure, "obj": Local(),
           "partial": functools.partial(closure, 1.0)}
    out = roundtrip(obj)
    assert out["lam"](2) == 6
    assert_array_equal(out["closure"](1.0), offset + 1)
    assert out["obj"].total() == Local().total()
    assert_array_equal(out["partial"](), offset + 1)


def test_pack_apply_message_frame_shape():
    arr = MB.copy()

    def f(a, b, c=None):
        return a.sum() + b + c["z"].sum()

    msg = pack_apply_message(f, (arr, 2), {"c": {"z": arr[:4]}, "d": 1})
    f_frames = len(serialize_object(f))
    info = pickle.loads(msg[f_frames])
    assert info == {"nargs": 2, "narg_bufs": 3, "kw_keys": ["c", "d"]}
    assert len(msg) == f_frames + 1 + 3 + 2
    f2, args, kwargs = unpack_apply_message(received(msg))
    assert isinstance(args, tuple)
    assert_array_equal(args[0], arr)
    assert kwargs["d"] == 1
    assert f2(args[0], args[1], c=kwargs["c"]) == f(arr, 2, c={"z": arr[:4]})


def test_unpack_apply_message_checks_frames():
    with pytest.raises(AssertionError, match="not enough buffers"):
        unpack_apply_message([b"x"])
    msg = pack_apply_message(len, (np.arange(500.0),), {})
    with pytest.raises(ValueError, match="frames after its head"):
        unpack_apply_message(msg[:-1])


def test_remaining_buffers_are_returned():
    frames = serialize_object(MB) + serialize_object({"x": 1})
    first, rest = deserialize_object(frames)
    assert_array_equal(first, MB)
    second, rest = deserialize_object(rest)
    assert second == {"x": 1} and rest == []


def test_unknown_format_version_is_refused():
    head = pickle.dumps(_FutureHead(), 5)
    with pytest.raises(ValueError, match="format 99"):
        deserialize_object([head])


class _FutureHead:
    def __reduce__(self):
        from kernelwire import _serialize_wire as wire

        return wire.open_envelope, (99, 0, b"")


def test_exported_from_package():
    from kernelwire import serialize

    for name in ("serialize_object", "deserialize_object", "pack_apply_message",
                 "unpack_apply_message"):
        assert getattr(kernelwire, name) is getattr(serialize, name)
    assert "unpickl" in serialize.__doc__ and "signature" in serialize.__doc__


@pytest.mark.needs("cloudpickle", reason="the lambda it sends, without IPython Parallel loaded,"
                   " goes through cloudpickle only")
def test_pickler_does_not_import_ipyparallel():
    # ipyparallel's canning applies only where IPython Parallel is loaded
    import subprocess

    code = (
        "import sys, numpy, kernelwire;"
        "f = kernelwire.serialize_object({'a': numpy.ones(999), 'f': lambda: 1});"
        "o, _ = kernelwire.deserialize_object(f);"
        "assert o['f']() == 1 and o['a'].sum() == 999;"
        "assert 'ipyparallel' not in sys.modules, 'ipyparallel imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
