"""kernelwire.serialize with IPython Parallel: both directions, canning semantics, install()."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from collections import namedtuple

import numpy as np
import pytest
from numpy.testing import assert_array_equal

ipp = pytest.importorskip("ipyparallel")
from ipyparallel.serialize import canning  # noqa: E402

import kernelwire  # noqa: E402
from kernelwire import _ipp_originals, ipp_serialize  # noqa: E402

stock = _ipp_originals.serialize()  # IPython Parallel's own functions
Point = namedtuple("Point", "x y")


@pytest.fixture
def installed():
    ipp_serialize.install()
    yield
    ipp_serialize.uninstall()


def nested():
    return {"a": [np.arange(5000.0), {"b": (np.ones((30, 40), dtype=">i4"), b"z" * 3000)}],
            "n": 7, "p": Point(1, np.arange(2000))}


def check_nested(out):
    assert_array_equal(out["a"][0], np.arange(5000.0))
    assert_array_equal(out["a"][1]["b"][0], np.ones((30, 40), dtype=">i4"))
    assert out["a"][1]["b"][1] == b"z" * 3000 and out["n"] == 7
    assert isinstance(out["p"], Point) and out["p"].x == 1


def test_stock_decodes_kernelwire_frames():
    frames = kernelwire.serialize_object(nested())
    out, rest = stock["deserialize_object"]([memoryview(f) for f in frames])
    assert rest == []
    check_nested(out)


def test_kernelwire_decodes_stock_frames():
    for obj in (nested(), [np.arange(3000.0), 1], np.arange(4000), b"q" * 5000, "s",
                {"f": (lambda x: x + 1)}):
        frames = stock["serialize_object"](obj)
        out, rest = kernelwire.deserialize_object(frames)
        assert rest == []
        if isinstance(obj, dict) and "f" in obj:
            assert out["f"](1) == 2
        elif isinstance(obj, dict):
            check_nested(out)
        elif isinstance(obj, list):
            assert_array_equal(out[0], obj[0])
        elif isinstance(obj, np.ndarray):
            assert_array_equal(out, obj)
        else:
            assert out == obj


def test_apply_messages_cross_both_ways():
    arr = np.arange(6000.0)
    ours = kernelwire.pack_apply_message(np.sum, (arr,), {"axis": 0})
    f, args, kwargs = stock["unpack_apply_message"](ours)
    assert f(*args, **kwargs) == arr.sum()
    theirs = stock["pack_apply_message"](np.sum, (arr,), {"axis": 0})
    f, args, kwargs = kernelwire.unpack_apply_message(theirs)
    assert f(*args, **kwargs) == arr.sum()


def test_stock_process_decodes_kernelwire_frames(tmp_path):
    """A separate interpreter with stock ipyparallel (nothing installed) reads our frames."""
    frames = kernelwire.serialize_object(nested())
    path = tmp_path / "frames.pickle"
    path.write_bytes(pickle.dumps([bytes(memoryview(f).cast("B")) for f in frames]))
    code = textwrap.dedent(f"""
        import pickle, sys
        from ipyparallel.serialize import deserialize_object
        assert deserialize_object.__module__ == "ipyparallel.serialize.serialize"
        frames = pickle.load(open({str(path)!r}, "rb"))
        out, rest = deserialize_object(frames)
        assert rest == []
        print(float(out["a"][0].sum()), int(out["a"][1]["b"][0].sum()), out["p"].x)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**_env(), "PYTHONPATH": _tests_dir()})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(np.arange(5000.0).sum()), "1200", "1"]


def _tests_dir() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent)


def _env() -> dict:
    import os

    return dict(os.environ)


def test_reference_and_interactive_functions_resolve_in_g():
    """IPython Parallel's meaning is kept: names are looked up in the engine namespace g."""
    @ipp.interactive
    def uses_engine_global():
        return engine_value * 2  # noqa: F821 - defined only in g

    frames = kernelwire.pack_apply_message(uses_engine_global, (ipp.Reference("engine_value"),),
                                           {"deep": [ipp.Reference("engine_value")]})
    g = {"engine_value": 21}
    f, args, kwargs = kernelwire.unpack_apply_message(frames, g)
    assert f() == 42
    assert args == (21,) and kwargs == {"deep": [21]}


def test_dependent_is_checked_on_uncan():
    """@depend's dependent object keeps its uncan hook (the engine's dependency check)."""
    from ipyparallel.error import UnmetDependency

    def never(*a):
        return False

    dep = ipp.depend(never)(len)
    frames = kernelwire.serialize_object(dep)
    with pytest.raises(UnmetDependency):
        kernelwire.deserialize_object(frames, {})


@pytest.mark.needs("cloudpickle", reason="ipyparallel.use_cloudpickle() imports it")
def test_use_cloudpickle_switch_is_honoured():
    """After ipyparallel's use_cloudpickle(), interactive functions carry their globals."""
    code = "def f():\n    return captured + 1\n"
    main_ns = sys.modules["__main__"].__dict__
    main_ns["captured"] = 41
    exec(compile(code, "<interactive>", "exec"), main_ns)
    func = main_ns.pop("f")
    try:
        # default (stock meaning): globals are the receiver's namespace
        out, _ = kernelwire.deserialize_object(kernelwire.serialize_object(func), {"captured": 1})
        assert out() == 2
        ipp.use_cloudpickle()
        try:
            out, _ = kernelwire.deserialize_object(kernelwire.serialize_object(func), {})
            assert out() == 42
        finally:
            ipp.use_pickle()
    finally:
        main_ns.pop("captured")


def test_interactive_classes_namedtuples_and_lambdas_in_sequences():
    """What the excluded upstream tests round-trip, checked on values."""
    @ipp.interactive
    class C:
        a = 5

    @ipp.interactive
    class D(C):
        b = 10

    out, _ = kernelwire.deserialize_object(kernelwire.serialize_object({"D": D, "C": C}))
    assert out["D"].a == 5 and out["D"].b == 10 and out["C"].a == 5
    tup, _ = kernelwire.deserialize_object(kernelwire.serialize_object((lambda x: x, 1)))
    assert tup[0](tup[1]) == 1
    lis, _ = kernelwire.deserialize_object(kernelwire.serialize_object([lambda x: x, 1]))
    assert lis[0](lis[1]) == 1
    p, _ = kernelwire.deserialize_object(kernelwire.serialize_object(Point(1, 2)), globals())
    assert p == Point(1, 2)
    arrays = (np.arange(2000.0), 1, 2, b"hello")
    frames = kernelwire.serialize_object(arrays)
    assert len(frames) == 2
    assert_array_equal(kernelwire.deserialize_object(frames)[0][0], arrays[0])


def test_install_rebinds_every_ipyparallel_module(installed):
    import ipyparallel.engine.datapub as datapub
    import ipyparallel.engine.kernel as engine_kernel
    import ipyparallel.serialize.serialize as serialize_module

    assert ipp_serialize.is_installed()
    for module in (ipp.serialize, serialize_module, ipp):
        for name in ipp_serialize.NAMES:
            assert getattr(module, name) is getattr(kernelwire, name), (module, name)
    assert engine_kernel.unpack_apply_message is kernelwire.unpack_apply_message
    assert engine_kernel.serialize_object is kernelwire.serialize_object
    assert datapub.serialize_object is kernelwire.serialize_object
    # PrePickled (used by view.map / apply) now pre-serializes with kernelwire
    pre = ipp.serialize.PrePickled({"a": np.arange(3000.0)})
    assert len(pre.buffers) == 2 and kernelwire.serialize_object(pre) == pre.buffers
    ipp_serialize.install()  # idempotent
    ipp_serialize.uninstall()
    assert not ipp_serialize.is_installed()
    assert engine_kernel.unpack_apply_message is stock["unpack_apply_message"]
    assert serialize_module.serialize_object is stock["serialize_object"]
    ipp_serialize.install()


def test_foreign_frames_with_installed_functions_do_not_recurse(installed):
    frames = stock["serialize_object"]({"a": np.arange(3000.0)})
    out, _ = ipp.serialize.deserialize_object(frames)
    assert_array_equal(out["a"], np.arange(3000.0))


def test_canned_objects_are_not_left_in_results():
    assert not any(isinstance(v, canning.CannedObject)
                   for v in kernelwire.deserialize_object(kernelwire.serialize_object(
                       {"r": ipp.Reference("x")}), {"x": 3})[0].values())
