"""The two cores are one interface: same names, signatures and attribute mutability.

msgpack-style: ``_core`` swaps in the compiled ``_ccore`` or the pure
``_pycore`` whole, so anything one exports and the other lacks (or takes
differently) would make behaviour depend on the install.
"""

from __future__ import annotations

import inspect

import pytest

from kernelwire import _core, _pycore
from kernelwire.session import Session

_ccore = pytest.importorskip("kernelwire._ccore", reason="the compiled core is not built")


def public_names(module) -> set[str]:
    names = {n for n in vars(module) if not n.startswith("_")}
    return {n for n in names if not inspect.ismodule(getattr(module, n))}


# Names only a core's own module-level imports put there (constants and helpers
# imported from shared modules are not part of the interface).
SHARED_IMPORTS = {
    "DELIM", "EMPTY_DICT_FRAME", "MIN_FRAMES", "PROTOCOL_VERSION", "UTC", "dateutil_utc",
    "json_family_packers", "json_family_unpackers", "orjson_fast_packer", "orjson_dumps_fast",
    "as_buffers", "check_buffers", "cull_digest_history", "signature_matches", "signed_prefix",
    "pack_content", "print_sent", "routing_prefix",
    "get_logger", "datetime", "jsonutil", "jc_session", "ZMQStream", "annotations",
}
#: the compiled core's own extra: the per-key HMAC object its SessionCore holds
COMPILED_ONLY = {"Signer"}


def test_both_cores_export_the_interface():
    for module in (_ccore, _pycore):
        missing = [n for n in _core.INTERFACE if not hasattr(module, n)]
        assert missing == [], f"{module.__name__} lacks {missing}"


def test_same_public_names():
    compiled = public_names(_ccore) - SHARED_IMPORTS
    pure = public_names(_pycore) - SHARED_IMPORTS
    assert compiled - COMPILED_ONLY == pure
    assert set(_core.INTERFACE) <= pure


def _parameters(func) -> list[tuple[str, object, object]]:
    sig = inspect.signature(func)
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize("name", [n for n in _core.INTERFACE if n.islower()])
def test_same_function_signatures(name):
    compiled, pure = getattr(_ccore, name), getattr(_pycore, name)
    if not callable(pure):
        return
    assert _parameters(compiled) == _parameters(pure), name


def _members(obj) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_session_core_same_members():
    assert _members(_ccore.SessionCore()) == _members(_pycore.SessionCore())


@pytest.mark.parametrize("name", sorted(_members(_pycore.SessionCore())))
def test_session_core_same_method_signatures(name):
    compiled = getattr(_ccore.SessionCore(), name)
    pure = getattr(_pycore.SessionCore(), name)
    if callable(pure) and not isinstance(pure, (set, dict)):
        assert _parameters(compiled) == _parameters(pure), name


def _mutable(obj, name) -> bool:
    value = getattr(obj, name)
    if callable(value) and not isinstance(value, (set, dict)):
        return False  # methods: not part of this check
    try:
        setattr(obj, name, value)
    except (AttributeError, TypeError):
        return False
    return True


def test_session_core_same_attribute_mutability():
    compiled, pure = _ccore.SessionCore(), _pycore.SessionCore()
    names = sorted(n for n in dir(pure) if not n.startswith("_"))
    table = {n: (_mutable(compiled, n), _mutable(pure, n)) for n in names}
    differ = {n: v for n, v in table.items() if v[0] != v[1]}
    assert differ == {}, f"(compiled, pure) writable differ: {differ}"
    # set only through their setters, on both cores
    for name in ("pack", "unpack", "auth"):
        assert table[name] == (False, False)


def test_session_methods_are_the_cores_functions():
    """Session binds each core's functions as its methods; no Python wrapper in between."""
    for core in ("cython", "pure"):
        cls = Session.pinned(core=core)
        module = _ccore if core == "cython" else _pycore
        for method in ("msg", "sign", "serialize", "deserialize", "send", "send_raw", "recv"):
            assert getattr(cls, method) is getattr(module, f"session_{method}"), (core, method)
        assert cls.implementations()["core"] == module.IMPLEMENTATION


def test_pinned_keeps_a_subclass_override():
    class Custom(Session):
        def deserialize(self, msg_list, content=True, copy=True):
            return {"custom": True}

    pinned = Custom.pinned(core="pure")
    assert pinned.deserialize is Custom.deserialize
    assert pinned.send is _pycore.session_send
