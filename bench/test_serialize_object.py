"""serialize_object / deserialize_object: kernelwire.serialize vs ipyparallel.serialize.

Objects are canned into [pickle, buffer...] frames for ipyparallel's apply
requests and results.  kernelwire.serialize is being written: until the
module exists, its rows are skipped (with that reason) rather than faked.
"""

from __future__ import annotations

import importlib

import pytest

np = pytest.importorskip("numpy")

MODULES = ["kernelwire.serialize", "ipyparallel.serialize"]

OBJECTS = {
    "small-dict": lambda: {"a": 1, "b": "two", "c": [3.0, 4.0], "d": None},
    "array-1MB": lambda: np.arange(128 * 1024, dtype=np.float64),
    # deeper than one level: ipyparallel pickles these arrays in band
    "nested-arrays": lambda: {
        "layers": [{"w": np.ones((64, 64)), "b": np.zeros(64)} for _ in range(8)]
    },
}


@pytest.fixture(params=MODULES)
def serializer(request):
    try:
        return importlib.import_module(request.param)
    except ImportError as exc:
        pytest.skip(f"{request.param} not importable: {exc}")


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.benchmark(group="serialize_object")
@pytest.mark.parametrize("kind", list(OBJECTS))
def test_serialize_object(benchmark, serializer, kind):
    obj = OBJECTS[kind]()
    frames = benchmark(serializer.serialize_object, obj)
    assert _same(serializer.deserialize_object(list(frames))[0], obj)


@pytest.mark.benchmark(group="deserialize_object")
@pytest.mark.parametrize("kind", list(OBJECTS))
def test_deserialize_object(benchmark, serializer, kind):
    obj = OBJECTS[kind]()
    frames = [memoryview(bytes(memoryview(f))) for f in serializer.serialize_object(obj)]
    restored, rest = benchmark(serializer.deserialize_object, frames)
    assert _same(restored, obj) and not rest
