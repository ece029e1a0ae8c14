"""The type stubs of the compiled modules against the modules themselves.

Each compiled module ships a ``.pyi`` next to the package's Python, and has a
pure twin with the same API.  For every such pair: the stub's public names
are the compiled module's, the twin's are the same less an explicit list of
compiled-only names, and the stub spells each function's and method's
parameters (names, kinds, defaults) and annotations as the module does.
A new pair (``_ccore.pyi`` beside ``_pycore``) is one more ``Twins`` entry.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import kernelwire


@dataclass(frozen=True)
class Twins:
    compiled: str  # kernelwire.<compiled>, with its stub <compiled>.pyi
    pure: str  # kernelwire.<pure>, the twin
    compiled_only: frozenset[str]  # public names the twin does not have
    imported: frozenset[str]  # public-looking names the modules import for their own use

    def __str__(self) -> str:
        return self.compiled


TWINS = [
    Twins(
        compiled="_zmqio",
        pure="_pyzmqio",
        # the raw C path's own objects: received frames, zero-copy trackers,
        # release counters, the capsule for other compiled modules
        compiled_only=frozenset(
            {"ReceivedFrame", "TrackState", "ZeroCopyTracker", "stats", "C_API"}
        ),
        imported=frozenset({"DONE", "annotations"}),
    ),
    Twins(
        compiled="_ccore",
        pure="_pycore",
        # the per-key HMAC object the compiled SessionCore holds
        compiled_only=frozenset({"Signer"}),
        # constants and steps both cores import from _protocol / _shared_steps
        imported=frozenset(
            {
                "DELIM", "EMPTY_DICT_FRAME", "MIN_FRAMES", "PROTOCOL_VERSION", "UTC",
                "dateutil_utc", "json_family_packers", "json_family_unpackers",
                "orjson_fast_packer", "orjson_dumps_fast", "as_buffers", "check_buffers",
                "cull_digest_history", "pack_content", "print_sent", "routing_prefix",
                "signature_matches",
                "signed_prefix", "get_logger", "datetime", "ZMQStream", "annotations",
            }
        ),
    ),
]


def stub_path(twins: Twins) -> Path:
    return Path(kernelwire.__file__).parent / f"{twins.compiled}.pyi"


def stub_tree(twins: Twins) -> ast.Module:
    return ast.parse(stub_path(twins).read_text(), filename=str(stub_path(twins)))


def defined(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names a stub body defines (imports are not re-exported), `if` branches included."""
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            names.update((t.id, node) for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.If):
            names.update(defined(node.body))
            names.update(defined(node.orelse))
    return names


def public(names) -> set[str]:
    return {name for name in names if not name.startswith("_")}


def runtime_public(module: ModuleType, twins: Twins) -> set[str]:
    return {
        name
        for name in public(dir(module))
        if not isinstance(getattr(module, name), ModuleType) and name not in twins.imported
    }


def compiled_module(twins: Twins) -> ModuleType:
    try:
        return importlib.import_module(f"kernelwire.{twins.compiled}")
    except ImportError:
        pytest.skip(f"kernelwire.{twins.compiled} is not built")


def stub_signature(node: ast.FunctionDef) -> list[tuple[str, str, object, str | None]]:
    """(name, kind, default, annotation) of each parameter, as inspect names them."""
    args = node.args
    positional = [(a, "POSITIONAL_ONLY") for a in args.posonlyargs]
    positional += [(a, "POSITIONAL_OR_KEYWORD") for a in args.args]
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults))
    defaults += [ast.literal_eval(d) for d in args.defaults]
    params = [(a, kind, d) for (a, kind), d in zip(positional, defaults, strict=True)]
    if args.vararg:
        params.append((args.vararg, "VAR_POSITIONAL", inspect.Parameter.empty))
    for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        default = inspect.Parameter.empty if d is None else ast.literal_eval(d)
        params.append((a, "KEYWORD_ONLY", default))
    if args.kwarg:
        params.append((args.kwarg, "VAR_KEYWORD", inspect.Parameter.empty))
    return [
        (a.arg, kind, d, None if a.annotation is None else ast.unparse(a.annotation))
        for a, kind, d in params
    ]


def runtime_signature(func) -> list[tuple[str, str, object, str | None]]:
    return [
        (
            p.name,
            p.kind.name,
            p.default,
            None if p.annotation is inspect.Parameter.empty else str(p.annotation),
        )
        for p in inspect.signature(func).parameters.values()
    ]


def assert_same_signature(node: ast.FunctionDef, func, where: str, annotations: bool) -> None:
    stub = stub_signature(node)
    runtime = runtime_signature(func)
    # names, kinds and defaults exactly
    assert [s[:3] for s in stub] == [r[:3] for r in runtime], where
    if annotations:  # where the module annotates, the stub says the same
        for s, r in zip(stub, runtime, strict=True):
            assert r[3] is None or r[3] == s[3], (where, s[0])
        returns = inspect.signature(func).return_annotation
        if returns is not inspect.Signature.empty:
            assert node.returns is not None and ast.unparse(node.returns) == returns, where


def members(cls: ast.ClassDef) -> dict[str, ast.AST]:
    """A stub class's public members, and __init__ (its constructor's signature)."""
    return {
        name: node
        for name, node in defined(cls.body).items()
        if not name.startswith("_") or name == "__init__"
    }


def is_property(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef) and any(
        isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list
    )


@pytest.fixture(params=TWINS, ids=str)
def twins(request) -> Twins:
    return request.param


def test_stub_ships_next_to_the_package(twins):
    assert stub_path(twins).is_file()
    assert (Path(kernelwire.__file__).parent / "py.typed").is_file()


def test_stub_names_are_the_compiled_modules(twins):
    module = compiled_module(twins)
    assert public(defined(stub_tree(twins).body)) == runtime_public(module, twins)


def test_twin_has_the_stub_names_less_the_compiled_only_ones(twins):
    pure = importlib.import_module(f"kernelwire.{twins.pure}")
    stub_names = public(defined(stub_tree(twins).body))
    assert twins.compiled_only <= stub_names  # the list names real things
    assert runtime_public(pure, twins) == stub_names - twins.compiled_only


def test_stub_signatures_are_the_compiled_modules(twins):
    module = compiled_module(twins)
    for name, node in defined(stub_tree(twins).body).items():
        if name.startswith("_"):
            continue
        obj = getattr(module, name)
        if isinstance(node, ast.FunctionDef):
            assert_same_signature(node, obj, name, annotations=True)
        elif isinstance(node, ast.ClassDef):
            assert isinstance(obj, type), name
            stub_members = members(node)
            own = {n for n in vars(obj) if not n.startswith("_") or n == "__init__"}
            assert set(stub_members) == own, name
            for member, member_node in stub_members.items():
                runtime_member = vars(obj)[member]
                if is_property(member_node):  # property or a C getset: read-only attribute
                    assert inspect.isdatadescriptor(runtime_member), (name, member)
                elif member == "__init__" and type(runtime_member).__name__ == "wrapper_descriptor":
                    continue  # a C type's __init__ slot says only (self, /, *args, **kwargs)
                elif isinstance(member_node, ast.FunctionDef):
                    where = f"{name}.{member}"
                    assert_same_signature(member_node, runtime_member, where, annotations=True)


def test_twin_signatures_are_the_stubs(twins):
    pure = importlib.import_module(f"kernelwire.{twins.pure}")
    for name, node in defined(stub_tree(twins).body).items():
        if name.startswith("_") or name in twins.compiled_only:
            continue
        if isinstance(node, ast.FunctionDef):
            # the twin annotates in its own words (t.Any): names, kinds, defaults only
            assert_same_signature(node, getattr(pure, name), name, annotations=False)
