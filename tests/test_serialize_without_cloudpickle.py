"""serialize_object as a plain ``pip install kernelwire ipyparallel`` gets it: no cloudpickle.

IPython Parallel does not depend on cloudpickle, so whatever stock
``ipyparallel.serialize`` sends without it, kernelwire sends too, in both
directions with a stock process. cloudpickle is hidden from kernelwire here
(``sys.modules["cloudpickle"] = None``) so these run in every environment,
also where cloudpickle is installed. Frame 0 has IPython Parallel's layout:
where both can send an object, the frames are byte for byte the same, so a
process without kernelwire installed decodes them.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
from collections import namedtuple

import numpy as np
import pytest
from numpy.testing import assert_array_equal

ipp = pytest.importorskip("ipyparallel")
from ipyparallel.serialize import canning  # noqa: E402

import kernelwire  # noqa: E402
from kernelwire import _ipp_originals, _serialize_pickler  # noqa: E402

stock = _ipp_originals.serialize()  # IPython Parallel's own functions
Point = namedtuple("Point", "x y")
OFFSET = np.arange(5000.0)


@pytest.fixture(autouse=True)
def no_cloudpickle(monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)
    _serialize_pickler._cloudpickle.cache_clear()
    _serialize_pickler._pickler_class.cache_clear()
    assert _serialize_pickler._cloudpickle() is None
    yield
    _serialize_pickler._cloudpickle.cache_clear()
    _serialize_pickler._pickler_class.cache_clear()


def engine_namespace() -> dict:
    """What an engine passes as ``g``: a module namespace (builtins, names pushed earlier)."""
    return {"__builtins__": __builtins__, "np": np}


def make_closure():
    scale = 3.0

    def closure(x):
        return x * scale + OFFSET[:3]

    return closure


def annotated(x: int, y: np.ndarray | None = None, *, z: float = 1.5) -> float:
    return x + z


class Interactive:
    """Stands for a class typed at the client's prompt."""

    def __init__(self):
        self.data = np.arange(3000.0)

    def total(self):
        return float(self.data.sum())


Interactive.__module__ = "__main__"
Interactive.__qualname__ = "Interactive_not_importable"


def lam(x):
    return x


# every kind of object the issue names, with a check of the rebuilt value
CASES = {
    "lambda": (lambda: (lambda x: x * 3), lambda r: r(2) == 6),
    "closure": (make_closure, lambda r: list(r(1.0)) == [3.0, 4.0, 5.0]),
    "annotated": (lambda: annotated,
                  lambda r: r(1) == 2.5 and r.__annotations__ == annotated.__annotations__
                  and r.__kwdefaults__ == {"z": 1.5}),
    "builtin": (lambda: len, lambda r: r([1, 2]) == 2),
    "module function": (lambda: os.path.join, lambda r: r("a", "b") == "a/b"),
    "interactive instance": (Interactive, lambda r: r.total() == float(OFFSET[:3000].sum())),
    "(f, array)": (lambda: (lambda a: float(a.sum()), OFFSET),
                   lambda r: r[0](r[1]) == float(OFFSET.sum())),
    "[lambda, 1]": (lambda: [lambda x: x + 1, 1], lambda r: r[0](r[1]) == 2),
    "lambda nested deep": (lambda: {"a": {"b": [lambda: 7]}}, lambda r: r["a"]["b"][0]() == 7),
    "partial": (lambda: functools.partial(annotated, 4), lambda r: r() == 5.5),
    "interactive function": (lambda: ipp.interactive(lambda: np.int64(5)), lambda r: r() == 5),
}
# what stock ipyparallel.serialize itself cannot send (plain pickle refuses them; a real
# __main__ class stock pickles by name, which works only where the class is defined)
STOCK_CANNOT = {"closure", "lambda nested deep", "interactive instance"}


@pytest.mark.parametrize("name", list(CASES))
def test_kernelwire_sends_it_and_both_decoders_read_it(name):
    make, check = CASES[name]
    frames = kernelwire.serialize_object(make())
    received = [memoryview(bytes(memoryview(f).cast("B"))) for f in frames]
    ours, rest = kernelwire.deserialize_object(received, engine_namespace())
    assert rest == [] and check(ours)
    theirs, rest = stock["deserialize_object"](list(received), engine_namespace())
    assert rest == [] and check(theirs)


@pytest.mark.parametrize("name", sorted(set(CASES) - STOCK_CANNOT))
def test_kernelwire_decodes_what_stock_sends(name):
    make, check = CASES[name]
    frames = stock["serialize_object"](make())
    out, rest = kernelwire.deserialize_object(frames, engine_namespace())
    assert rest == [] and check(out)


def test_importable_functions_and_large_bytes_do_not_recurse():
    # the original failure: kernelwire's own rebuild functions were canned without end
    frames = kernelwire.serialize_object([os.path.join, b"x" * 5000, memoryview(b"y" * 4000)])
    (join, data, view), _ = kernelwire.deserialize_object(frames)
    assert join("a", "b") == "a/b" and data == b"x" * 5000 and bytes(view) == b"y" * 4000
    frames = kernelwire.serialize_object({"deep": [[os.path.join, bytearray(3000)]]})
    out, _ = kernelwire.deserialize_object(frames)
    assert out["deep"][0][0] is os.path.join and out["deep"][0][1] == bytearray(3000)


def test_apply_message_of_a_lambda_with_an_array_both_ways():
    arr = np.arange(8000.0)
    ours = kernelwire.pack_apply_message(lambda a, k=0: float(a.sum()) + k, (arr,), {"k": 1})
    for unpack in (kernelwire.unpack_apply_message, stock["unpack_apply_message"]):
        f, args, kwargs = unpack(list(ours), engine_namespace())
        assert f(*args, **kwargs) == float(arr.sum()) + 1
    theirs = stock["pack_apply_message"](lambda a, k=0: float(a.sum()) + k, (arr,), {"k": 1})
    f, args, kwargs = kernelwire.unpack_apply_message(theirs, engine_namespace())
    assert f(*args, **kwargs) == float(arr.sum()) + 1


def test_arrays_stay_out_of_band_at_any_depth():
    a, b = np.arange(3000.0), np.ones((40, 50))
    frames = kernelwire.serialize_object({"f": lambda: 1, "deep": [{"x": (a, {"y": b})}]})
    assert len(frames) == 3
    assert {memoryview(f).nbytes for f in frames[1:]} == {a.nbytes, b.nbytes}
    out, _ = kernelwire.deserialize_object(frames)
    assert out["f"]() == 1
    assert_array_equal(out["deep"][0]["x"][0], a)
    assert_array_equal(out["deep"][0]["x"][1]["y"], b)


# -- IPython Parallel's frame-0 layout ------------------------------------------

SAME_BYTES = {
    "int": lambda: 5,
    "str": lambda: "text",
    "tuple": lambda: (1, "a", None),
    "dict of arrays": lambda: {"b": np.arange(3000.0), "a": np.arange(10), "c": 1},
    "list with big bytes": lambda: [b"x" * 2000, 3],
    "array": lambda: np.arange(2000).reshape(40, 50),
    "structured array": lambda: np.zeros(300, dtype=[("g", "<f4"), ("s", "S3")]),
    "big memoryview": lambda: memoryview(b"m" * 3000),
    "lambda": lambda: (lambda x: x),
    "module function": lambda: os.path.join,
    "(lambda, 1)": lambda: (lambda x: x, 1),
    "interactive class in a dict": lambda: {"C": ipp.interactive(type("C", (), {"a": 5}))},
    "namedtuple": lambda: Point(1, 2),
}


@pytest.mark.parametrize("name", list(SAME_BYTES))
def test_frames_are_stock_bytes_where_stock_can_send(name):
    obj = SAME_BYTES[name]()
    ours = [bytes(memoryview(f).cast("B")) for f in kernelwire.serialize_object(obj)]
    theirs = [bytes(memoryview(f).cast("B")) for f in stock["serialize_object"](obj)]
    if name == "namedtuple":
        # a plain object: the same object in frame 0, pickled with protocol 5
        assert pickle.loads(ours[0]) == pickle.loads(theirs[0]) and len(ours) == 1
    else:
        assert ours == theirs


def test_frame_zero_holds_ipyparallels_canned_items():
    frames = kernelwire.serialize_object((np.arange(3000.0), [np.ones(2000)], b"x" * 3000))
    head = pickle.loads(frames[0])  # no buffers argument: frame 0 stands alone
    assert type(head) is tuple and isinstance(head[0], canning.CannedArray)
    assert isinstance(head[1], canning.CannedObject)  # nested array: kernelwire's envelope
    assert isinstance(head[2], canning.CannedBytes)
    assert [type(b) for b in head[0].buffers] == [type(None)]
    assert len(frames) == 4


def test_a_process_without_kernelwire_decodes_functions_and_arrays(tmp_path):
    """Where the layout is IPython Parallel's own, decoding needs no kernelwire at all."""
    arr = np.arange(4000.0)
    typed = {"__name__": "__main__"}  # functions as typed at the client's prompt
    exec(textwrap.dedent("""
        def annotated(x: int, *, z: float = 1.5) -> float:
            return x + z
        double = lambda x: x * 2
        total = lambda a: float(a.sum())
        scaled = lambda a, k: float(a.sum()) * k
    """), typed)
    objects = {
        "lambda": kernelwire.serialize_object(typed["double"]),
        "annotated": kernelwire.serialize_object(typed["annotated"]),
        "tuple": kernelwire.serialize_object((typed["total"], arr)),
        "apply": kernelwire.pack_apply_message(typed["scaled"], (arr,), {"k": 2}),
    }
    path = tmp_path / "frames.pickle"
    path.write_bytes(pickle.dumps(
        {k: [bytes(memoryview(f).cast("B")) for f in v] for k, v in objects.items()}))
    code = textwrap.dedent(f"""
        import pickle, sys
        sys.modules["kernelwire"] = None  # not installed
        from ipyparallel.serialize import deserialize_object, unpack_apply_message
        frames = pickle.load(open({str(path)!r}, "rb"))
        g = {{"__builtins__": __builtins__}}
        print(deserialize_object(frames["lambda"], g)[0](21))
        print(deserialize_object(frames["annotated"], g)[0](1))
        (f, a), _ = deserialize_object(frames["tuple"], g)
        print(f(a))
        f, args, kwargs = unpack_apply_message(frames["apply"], g)
        print(f(*args, **kwargs))
    """)
    env = {k: v for k, v in os.environ.items() if k != "KERNELWIRE_INSTALL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42", "2.5", str(float(arr.sum())), str(float(arr.sum()) * 2)]


def test_sessions_of_both_cores_carry_functions(Session_):
    """Through a real message of either core, as an engine receives an apply request."""
    import zmq

    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    endpoint = f"inproc://kw-no-cloudpickle-{uuid.uuid4().hex}"  # closing unbinds lazily
    a.bind(endpoint)
    b.connect(endpoint)
    try:
        sender, receiver = Session_(key=b"k"), Session_(key=b"k")
        buffers = kernelwire.pack_apply_message(make_closure(), (OFFSET,), {})
        sender.send(a, "apply_request", content={}, buffers=buffers)
        _, frames = receiver.feed_identities(b.recv_multipart(copy=False), copy=False)
        msg = receiver.deserialize(frames, content=True, copy=False)
        f, args, _ = kernelwire.unpack_apply_message(msg["buffers"], engine_namespace())
        assert list(f(1.0)) == [3.0, 4.0, 5.0] and args[0] is not OFFSET
        assert_array_equal(args[0], OFFSET)
    finally:
        a.close(0)
        b.close(0)
