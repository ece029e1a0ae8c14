"""The wire-protocol vectors in tests/vectors/: every receiver must agree with every vector.

Checked against both kernelwire cores, jupyter_client itself, and the
standalone C receiver in examples/ (built here with the system compiler and
OpenSSL).  The generator must reproduce the committed files byte for byte,
and docs/wire-protocol.md must show the committed worked example.
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client import session as jc_session

REPO = Path(__file__).resolve().parent.parent
VECTOR_DIR = REPO / "tests" / "vectors"
C_SOURCE = REPO / "examples" / "verify_vectors.c"
DOC = REPO / "docs" / "wire-protocol.md"
DELIM = b"<IDS|MSG>"

# verdict -> (exception type, message prefix) a Python receiver raises for it
PYTHON_ERRORS = {
    "unsigned": {("ValueError", "Unsigned Message")},
    "duplicate": {("ValueError", "Duplicate Signature")},
    "invalid_signature": {("ValueError", "Invalid Signature")},
    "malformed": {
        ("TypeError", "malformed message"),
        ("ValueError", "b'<IDS|MSG>' is not in list"),
        ("IndexError", "list index out of range"),
    },
}


def _load_vectors() -> list[dict]:
    vectors = []
    for name in ("accepted.json", "rejected.json"):
        data = json.loads((VECTOR_DIR / name).read_text(encoding="utf-8"))
        assert data["format"] == "kernelwire-wire-vectors/1"
        vectors += data["vectors"]
    return vectors


VECTORS = _load_vectors()
NAMES = [v["name"] for v in VECTORS]


def _generator():
    """scripts/make_vectors.py as a module (it is a script, not part of the package)."""
    if "make_vectors" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "make_vectors", REPO / "scripts" / "make_vectors.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["make_vectors"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["make_vectors"]


def _frames(vector: dict) -> list[bytes]:
    return [bytes.fromhex(f) for f in vector["frames_hex"]]


def _receiver(session_class: type, vector: dict):
    session = session_class(
        key=bytes.fromhex(vector["key_hex"]),
        signature_scheme=vector["scheme"],
        packer=vector["packer"],
    )
    session.digest_history.update(bytes.fromhex(s) for s in vector["seen_hex"])
    return session


def assert_agrees(session_class: type, vector: dict) -> None:
    """A ``session_class`` receiver reaches the vector's verdict, signature and history."""
    frames = _frames(vector)
    seen = {bytes.fromhex(s) for s in vector["seen_hex"]}
    session = _receiver(session_class, vector)
    d = frames.index(DELIM) if DELIM in frames else None
    signature = frames[d + 1] if d is not None and d + 1 < len(frames) else None

    if vector["expected_signature"] is None:
        assert signature is None
    else:
        assert session.sign(frames[d + 2 : d + 6]) == vector["expected_signature"].encode()

    error = vector["python_error"]
    if vector["verdict"] == "valid":
        assert error is None
        idents, rest = session.feed_identities(frames)
        msg = session.deserialize(rest)
        assert idents == frames[:d]
        assert msg["header"]["msg_id"] == json.loads(rest[1])["msg_id"]
        assert msg["content"] == json.loads(rest[4])
        assert [bytes(b) for b in msg["buffers"]] == rest[5:]
    else:
        assert (error["type"], error["message_prefix"]) in PYTHON_ERRORS[vector["verdict"]]
        with pytest.raises(getattr(builtins, error["type"])) as info:
            _idents, rest = session.feed_identities(frames)
            session.deserialize(rest)
        assert type(info.value).__name__ == error["type"]  # not merely a subclass
        assert str(info.value).startswith(error["message_prefix"])

    recorded = signature is not None and signature not in seen and (
        signature in session.digest_history
    )
    assert recorded == vector["records_signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=NAMES)
def test_kernelwire_agrees_with_vector(Session_, vector):
    assert_agrees(Session_, vector)


@pytest.mark.parametrize("vector", VECTORS, ids=NAMES)
def test_jupyter_client_agrees_with_vector(vector):
    assert_agrees(jc_session.Session, vector)


SIGNED_VALID = [v for v in VECTORS if v["verdict"] == "valid" and v["key_hex"]]


@pytest.mark.parametrize("vector", SIGNED_VALID, ids=[v["name"] for v in SIGNED_VALID])
@pytest.mark.parametrize("receiver", ["kernelwire", "jupyter_client"])
def test_peek_records_nothing(Session_, receiver, vector):
    """content=False leaves the content packed and the history alone; the real read follows."""
    session = _receiver(Session_ if receiver == "kernelwire" else jc_session.Session, vector)
    _idents, rest = session.feed_identities(_frames(vector))
    before = set(session.digest_history)
    peeked = session.deserialize(rest, content=False)
    assert peeked["content"] == rest[4]
    assert session.digest_history == before
    session.deserialize(rest)
    assert rest[0] in session.digest_history
    with pytest.raises(ValueError, match="^Duplicate Signature"):
        session.deserialize(rest)


def test_vector_set_covers_the_protocol():
    schemes = {v["scheme"] for v in VECTORS if v["verdict"] == "valid" and v["key_hex"]}
    assert schemes >= {f"hmac-{s}" for s in ("sha256", "sha512", "md5", "sha3_256", "blake2b")}
    assert {v["packer"] for v in VECTORS if v["verdict"] == "valid"} == {"json", "orjson"}
    verdicts = {v["verdict"] for v in VECTORS}
    assert verdicts == {"valid", "invalid_signature", "duplicate", "unsigned", "malformed"}
    valid = [_frames(v) for v in VECTORS if v["verdict"] == "valid"]
    assert any(len(f) > f.index(DELIM) + 6 for f in valid), "no vector with buffers"
    assert any(f.index(DELIM) > 1 for f in valid), "no vector with several identities"
    assert len(NAMES) == len(set(NAMES))


def test_generator_reproduces_committed_vectors(Session_):
    generator = _generator()
    fresh = generator.build_vectors(Session_)
    committed = {v["name"]: v for v in VECTORS}
    assert [v["name"] for v in fresh] == NAMES
    for vector in fresh:
        old = committed[vector["name"]]
        for field in ("frames_hex", "expected_signature", "verdict", "records_signature",
                      "python_error", "key_hex", "scheme", "seen_hex"):
            assert vector[field] == old[field], f"{vector['name']}: {field} changed"
    for name, text in generator.render_files(fresh).items():
        assert (VECTOR_DIR / name).read_text(encoding="utf-8") == text, (
            f"tests/vectors/{name} is stale: run python scripts/make_vectors.py"
        )


def test_text_vectors_match_json():
    text = (VECTOR_DIR / "vectors.txt").read_text(encoding="utf-8")
    assert text == _generator().render_text(VECTORS)


def test_doc_shows_the_committed_worked_example():
    doc = DOC.read_text(encoding="utf-8")
    assert _generator().worked_example_markdown(VECTORS) in doc
    example = next(v for v in VECTORS if v["name"] == "worked-example")
    signed = b"".join(_frames(example)[3:7]).decode()
    key = bytes.fromhex(example["key_hex"]).decode()
    assert f"printf '%s' '{signed}' | openssl dgst -sha256 -hmac '{key}'" in doc
    assert f"{len(VECTORS)} messages" in doc


# ---------------------------------------------------------------------------
# the C receiver in examples/
# ---------------------------------------------------------------------------


def _crypto_flags() -> list[str]:
    pkg_config = shutil.which("pkg-config")
    if pkg_config:
        found = subprocess.run([pkg_config, "--cflags", "--libs", "libcrypto"],
                               capture_output=True, text=True)
        if found.returncode == 0:
            return shlex.split(found.stdout)
    return ["-lcrypto"]


@pytest.fixture(scope="module")
def c_verifier(tmp_path_factory) -> Path:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.fail("no C compiler (cc, gcc, clang) found: examples/verify_vectors.c is unchecked")
    exe = tmp_path_factory.mktemp("c_example") / "verify_vectors"
    cmd = [*shlex.split(cc), "-std=c99", "-Wall", "-Wextra", "-O2", "-o", str(exe),
           str(C_SOURCE), *_crypto_flags()]
    built = subprocess.run(cmd, capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(
            "building examples/verify_vectors.c failed; it needs OpenSSL 3 headers and "
            f"libcrypto (Debian/Ubuntu: libssl-dev)\n$ {shlex.join(cmd)}\n{built.stderr}"
        )
    return exe


def _run(exe: Path, vectors: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), str(vectors)], capture_output=True, text=True, timeout=60)


def test_c_receiver_agrees_with_every_vector(c_verifier):
    result = _run(c_verifier, VECTOR_DIR / "vectors.txt")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    reported = {line.split()[1]: line.split()[2] for line in lines if line.startswith("ok ")}
    assert reported == {v["name"]: v["verdict"] for v in VECTORS}
    assert lines[-1] == f"{len(VECTORS)} vectors, 0 disagree"


def test_c_receiver_reports_disagreement(c_verifier, tmp_path):
    """Wrong expectations make it fail, naming the vectors: its success means something."""
    text = (VECTOR_DIR / "vectors.txt").read_text(encoding="utf-8")
    blocks = text.split("\nvector ")
    wrong = {"tampered-content", "sha512-json-execute_request", "duplicate"}
    edited = []
    for block in blocks:
        name = block.split("\n", 1)[0]
        if name == "tampered-content":
            block = block.replace("verdict invalid_signature", "verdict valid")
        elif name == "sha512-json-execute_request":
            sig_line = next(ln for ln in block.splitlines() if ln.startswith("signature "))
            block = block.replace(sig_line, sig_line[:-1] + ("0" if sig_line[-1] != "0" else "1"))
        elif name == "duplicate":
            block = block.replace("records 0", "records 1")
        edited.append(block)
    bad = tmp_path / "vectors.txt"
    bad.write_text("\nvector ".join(edited), encoding="utf-8")
    result = _run(c_verifier, bad)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAIL")}
    assert failed == wrong
    assert result.stdout.splitlines()[-1] == f"{len(VECTORS)} vectors, 3 disagree"


def test_c_receiver_rejects_unreadable_input(c_verifier, tmp_path):
    bad = tmp_path / "vectors.txt"
    bad.write_text("vector x\nframe 0g\nend\n", encoding="utf-8")
    result = _run(c_verifier, bad)
    assert result.returncode == 2
    assert "bad hex" in result.stderr
