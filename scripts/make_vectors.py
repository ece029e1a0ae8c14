"""Generate the wire-protocol test vectors in tests/vectors/ from kernelwire.Session.

Every message is built and signed by kernelwire, then cross-checked three ways:
jupyter_client's Session must serialize the same message to the same bytes,
every signature must equal a plain ``hmac``/``hashlib`` computation, and every
verdict must be what both kernelwire's and jupyter_client's
``Session.deserialize`` decide.  Nothing is written unless all of them agree.

Each vector describes one receiver (key, signature scheme, packer, the
signatures it has already seen) and one multipart message exactly as it
arrives from zmq (identities, delimiter, signature, four packed dicts,
buffers), with the verdict the receiver must reach.

    python scripts/make_vectors.py                    # (re)write tests/vectors/
    python scripts/make_vectors.py --check            # exit 1 if the files are stale
    python scripts/make_vectors.py --worked-example   # the Markdown for docs/wire-protocol.md
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from jupyter_client import session as jc_session

import kernelwire

REPO = Path(__file__).resolve().parent.parent
VECTOR_DIR = REPO / "tests" / "vectors"
FORMAT = "kernelwire-wire-vectors/1"
DELIM = b"<IDS|MSG>"
UTC = timezone.utc

# Fixed inputs, so every run produces the same bytes.
KEY = b"8c2d6f0e-7b1a-4c59-9e3d-2f4a6b8c0d1e"  # the shape of a connection file's key
OTHER_KEY = b"e1d0c8b6-a4f2-4d3e-95c4-a1b7e0f6d2c8"
LONG_KEY = (b"a-key-longer-than-any-hash-block-" * 10)[:300]  # HMAC hashes it first
CLIENT_SESSION = "6f1c2a9e-3b7d-4e85-a0c4-9d2e8b1f5a37"
KERNEL_SESSION = "b4e9d1a6-5c2f-4a8b-9e73-0d6c1f8a2b95"
CLIENT_IDENT = bytes.fromhex("00b3a2c1d0")  # what a ROUTER names a peer: 5 bytes, 0x00 first
PROXY_IDENT = b"proxy-7"
WHEN = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
WHEN_WHOLE = datetime(2025, 3, 14, 15, 9, 27, tzinfo=UTC)  # microseconds 0: no fraction
SUBSHELL = "0d3e5f7a-9b1c-4d2e-8f6a-1b3c5d7e9f20"
COMM_ID = "c0d1e2f3-a4b5-4c6d-8e7f-901234567890"
BUFFERS = [bytes(range(16)), b"\x00\xff" * 8]


# ---------------------------------------------------------------------------
# receivers and verdicts
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Receiver:
    """The side that verifies: its configuration and replay history."""

    key: bytes = KEY
    scheme: str = "hmac-sha256"
    packer: str = "json"
    seen: tuple[bytes, ...] = ()

    def session(self, session_class: type) -> t.Any:
        s = session_class(key=self.key, signature_scheme=self.scheme, packer=self.packer)
        s.digest_history.update(self.seen)
        return s


# (verdict, exception type, message prefix) for everything a receiver may raise
REJECTIONS = [
    ("unsigned", ValueError, "Unsigned Message"),
    ("duplicate", ValueError, "Duplicate Signature"),
    ("invalid_signature", ValueError, "Invalid Signature"),
    ("malformed", TypeError, "malformed message"),
    ("malformed", ValueError, "b'<IDS|MSG>' is not in list"),  # feed_identities: no delimiter
    ("malformed", IndexError, "list index out of range"),  # nothing after the delimiter
]


@dataclass(frozen=True)
class Outcome:
    verdict: str
    error: dict | None  # {"type": ..., "message_prefix": ...} or None when accepted
    recorded: bool  # the signature frame entered the replay history
    message: dict | None = field(default=None, compare=False)


def receive(session_class: type, receiver: Receiver, frames: list[bytes]) -> Outcome:
    """What a Session of ``session_class`` configured as ``receiver`` makes of ``frames``."""
    session = receiver.session(session_class)
    before = set(session.digest_history)
    signature = _signature_frame(frames)
    message = None
    try:
        _idents, rest = session.feed_identities(list(frames))
        message = session.deserialize(rest)
    except Exception as e:  # every rejection is classified below
        verdict, error = classify(e)
    else:
        verdict, error = "valid", None
    recorded = (
        signature is not None
        and signature not in before
        and signature in session.digest_history
    )
    return Outcome(verdict, error, recorded, message)


def classify(error: BaseException) -> tuple[str, dict]:
    for verdict, kind, prefix in REJECTIONS:
        if type(error) is kind and str(error).startswith(prefix):
            return verdict, {"type": kind.__name__, "message_prefix": prefix}
    raise AssertionError(f"unexpected rejection {error!r}") from error


def _delimiter_index(frames: list[bytes]) -> int | None:
    return frames.index(DELIM) if DELIM in frames else None


def _signature_frame(frames: list[bytes]) -> bytes | None:
    d = _delimiter_index(frames)
    if d is None or d + 1 >= len(frames):
        return None
    return frames[d + 1]


def reference_signature(receiver: Receiver, frames: list[bytes]) -> str | None:
    """The lowercase hex HMAC of the (up to four) frames after the signature frame.

    Computed with nothing but ``hmac`` and ``hashlib``; None when the message
    has no signature frame, "" when the receiver has no key.
    """
    d = _delimiter_index(frames)
    if d is None or d + 1 >= len(frames):
        return None
    if not receiver.key:
        return ""
    digest = getattr(hashlib, receiver.scheme.removeprefix("hmac-"))
    mac = hmac.new(receiver.key, digestmod=digest)
    for frame in frames[d + 2 : d + 6]:
        mac.update(frame)
    return mac.hexdigest()


# ---------------------------------------------------------------------------
# senders and messages
# ---------------------------------------------------------------------------


def header(
    msg_type: str,
    session: str = CLIENT_SESSION,
    n: int = 0,
    date: datetime = WHEN,
    version: str = "5.4",
    **extra: t.Any,
) -> dict:
    """A header in jupyter_client's key order, with a fixed id and date."""
    h = {
        "msg_id": f"{session}_4242_{n}",
        "msg_type": msg_type,
        "username": "ada" if session == CLIENT_SESSION else "kernel",
        "session": session,
        "date": date,
        "version": version,
    }
    h.update(extra)
    return h


EXECUTE_REQUEST = header("execute_request")
MESSAGES: dict[str, dict] = {
    "execute_request": {
        "header": EXECUTE_REQUEST,
        "content": {
            "code": "print(6 * 7)",
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": True,
            "stop_on_error": True,
        },
    },
    "execute_reply": {
        "header": header("execute_reply", KERNEL_SESSION, 7, WHEN_WHOLE),
        "parent": EXECUTE_REQUEST,
        "metadata": {"started": WHEN, "status": "ok"},
        "content": {"status": "ok", "execution_count": 1, "user_expressions": {}},
    },
    "stream": {
        "header": header("stream", KERNEL_SESSION, 8),
        "parent": EXECUTE_REQUEST,
        "content": {"name": "stdout", "text": "h\u00e9llo, w\u00f6rld \U0001f431\n"},
    },
    "comm_msg": {
        "header": header("comm_msg", KERNEL_SESSION, 9),
        "content": {
            "comm_id": COMM_ID,
            "data": {"method": "update", "state": {}, "buffer_paths": [["a"], ["b"]]},
        },
    },
    "subshell_execute_request": {
        "header": header("execute_request", n=1, version="5.5", subshell_id=SUBSHELL),
        "content": {"code": "sleep(1)", "silent": False},
    },
    "kernel_info_request": {
        "header": header("kernel_info_request", n=2, date=WHEN_WHOLE, version="5.0"),
        "content": {},
    },
}


def build(
    session_class: type,
    message: str,
    *,
    key: bytes = KEY,
    scheme: str = "hmac-sha256",
    packer: str = "json",
    idents: list[bytes] | None = None,
    buffers: list[bytes] | None = None,
) -> list[bytes]:
    """Serialize one of MESSAGES with kernelwire; jupyter_client must produce the same bytes."""
    spec = MESSAGES[message]
    frames_by = []
    for cls in (session_class, jc_session.Session):
        sender = cls(key=key, signature_scheme=scheme, packer=packer)
        msg = sender.msg(
            spec["header"]["msg_type"],
            content=spec["content"],
            parent=spec.get("parent"),
            header=dict(spec["header"]),
            metadata=spec.get("metadata"),
        )
        frames_by.append(list(sender.serialize(msg, idents)) + list(buffers or []))
    kernelwire_frames, jc_frames = frames_by
    if kernelwire_frames != jc_frames:
        raise AssertionError(f"{message}: kernelwire and jupyter_client bytes differ")
    return kernelwire_frames


def resign(frames: list[bytes], signature: bytes) -> list[bytes]:
    d = frames.index(DELIM)
    return frames[: d + 1] + [signature] + frames[d + 2 :]


def hmac_hex(key: bytes, scheme: str, parts: list[bytes]) -> bytes:
    mac = hmac.new(key, b"".join(parts), getattr(hashlib, scheme.removeprefix("hmac-")))
    return mac.hexdigest().encode()


# ---------------------------------------------------------------------------
# the vectors
# ---------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    description: str
    receiver: Receiver
    frames: list[bytes]
    verdict: str


def cases(session_class: type) -> list[Case]:
    def b(message: str, **kw: t.Any) -> list[bytes]:
        return build(session_class, message, **kw)

    out: list[Case] = []

    def add(name: str, description: str, frames: list[bytes], verdict: str, **recv: t.Any):
        out.append(Case(name, description, Receiver(**recv), frames, verdict))

    # -- accepted ----------------------------------------------------------
    worked = b("execute_request", idents=[CLIENT_IDENT])
    add("worked-example",
        "execute_request as the kernel's shell ROUTER receives it: one identity, json packer, "
        "hmac-sha256 (the worked example in docs/wire-protocol.md)",
        worked, "valid")
    add("sha256-orjson-execute_request",
        "the same message packed by orjson (compact JSON): other bytes, other signature",
        b("execute_request", packer="orjson", idents=[CLIENT_IDENT]), "valid", packer="orjson")
    add("sha256-json-execute_reply",
        "a reply: parent_header is the request's header; a date with zero microseconds has "
        "no fraction; metadata carries a date too",
        b("execute_reply", idents=[CLIENT_IDENT]), "valid")
    add("sha256-orjson-execute_reply",
        "the reply packed by orjson",
        b("execute_reply", packer="orjson", idents=[CLIENT_IDENT]), "valid", packer="orjson")
    add("sha256-json-stream-unicode",
        "IOPub stream with a topic identity and non-ASCII text: raw UTF-8 is signed",
        b("stream", idents=[b"stream.stdout"]), "valid")
    comm = b("comm_msg", packer="orjson", idents=[PROXY_IDENT, CLIENT_IDENT], buffers=BUFFERS)
    add("sha256-orjson-comm_msg-buffers",
        "two identities and two binary buffers after the content (buffers are not signed)",
        comm, "valid", packer="orjson")
    add("sha256-json-subshell-5.5",
        "protocol 5.5 header with subshell_id (JEP 91)",
        b("subshell_execute_request", idents=[CLIENT_IDENT]), "valid")
    add("sha256-json-kernel_info-5.0",
        "protocol 5.0 header, no identities, empty parent_header, metadata and content (b'{}')",
        b("kernel_info_request"), "valid")
    for scheme in ("sha512", "md5", "sha3_256", "blake2b"):
        for packer in ("json", "orjson"):
            buffers = BUFFERS if packer == "orjson" else None
            add(f"{scheme}-{packer}-comm_msg" if buffers else f"{scheme}-{packer}-execute_request",
                f"hmac-{scheme}, {packer} packer" + (", with buffers" if buffers else ""),
                b("comm_msg" if buffers else "execute_request", scheme=f"hmac-{scheme}",
                  packer=packer, idents=[CLIENT_IDENT], buffers=buffers),
                "valid", scheme=f"hmac-{scheme}", packer=packer)
    for scheme in ("sha256", "sha3_256"):
        add(f"{scheme}-long-key",
            f"a 300-byte key, longer than the {scheme} block: HMAC hashes the key first",
            b("execute_request", key=LONG_KEY, scheme=f"hmac-{scheme}", idents=[CLIENT_IDENT]),
            "valid", key=LONG_KEY, scheme=f"hmac-{scheme}")
    no_key = b("execute_request", key=b"", idents=[CLIENT_IDENT])
    add("no-key-empty-signature",
        "an empty key disables signing: the signature frame is empty",
        no_key, "valid", key=b"")
    add("no-key-ignores-signature",
        "a receiver without a key checks nothing, even a signature that is present",
        resign(no_key, worked[2]), "valid", key=b"")
    add("history-of-other-messages",
        "signatures seen before do not matter unless this one is among them",
        worked, "valid",
        seen=(hmac_hex(KEY, "hmac-sha256", [b"{}"]), b"0" * 64))
    add("buffers-not-signed",
        "the buffers of sha256-orjson-comm_msg-buffers replaced: still valid, buffers are "
        "not protected by the signature",
        comm[:-2] + [b"evil", b""], "valid", packer="orjson")
    add("identities-not-signed",
        "the worked example with another routing identity: identities are not signed",
        [b"another-peer"] + worked[1:], "valid")

    # -- rejected: the signature -------------------------------------------
    d = 1  # the worked example's delimiter index
    sig = worked[d + 1]
    tampered = list(worked)
    tampered[-1] = tampered[-1].replace(b"6 * 7", b"6 * 9")
    add("tampered-content", "content changed after signing", tampered, "invalid_signature")
    tampered = list(worked)
    tampered[d + 2] = tampered[d + 2].replace(b'"ada"', b'"eve"')
    add("tampered-header", "header changed after signing", tampered, "invalid_signature")
    swapped = b("execute_reply", idents=[CLIENT_IDENT])
    swapped[4], swapped[5] = swapped[5], swapped[4]
    add("frames-swapped",
        "parent_header and metadata frames exchanged: the order of the signed frames matters",
        swapped, "invalid_signature")
    add("uppercase-hex", "the right digest in uppercase hex: signatures are lowercase",
        resign(worked, sig.upper()), "invalid_signature")
    add("truncated-signature",
        "the first half of the right signature: comparing only len(received) bytes accepts it",
        resign(worked, sig[:32]), "invalid_signature")
    add("one-character-signature",
        "just the first character of the right signature (a strncmp-style prefix check "
        "accepts it)",
        resign(worked, sig[:1]), "invalid_signature")
    add("signature-trailing-newline", "the right signature plus b'\\n'",
        resign(worked, sig + b"\n"), "invalid_signature")
    add("binary-digest", "the raw 32-byte digest instead of its hex form",
        resign(worked, bytes.fromhex(sig.decode())), "invalid_signature")
    add("buffers-signed",
        "a sender that also signed the buffers (the classic bug)",
        resign(comm, hmac_hex(KEY, "hmac-sha256", comm[4:])), "invalid_signature",
        packer="orjson")
    add("identities-signed",
        "a sender that signed identities and delimiter along with the dicts",
        resign(worked, hmac_hex(KEY, "hmac-sha256", [worked[0], DELIM] + worked[3:])),
        "invalid_signature")
    orjson_sig = b("execute_request", packer="orjson", idents=[CLIENT_IDENT])[2]
    add("signed-reserialized",
        "signed over an orjson re-serialization of the dicts, sent as json bytes: verify "
        "the bytes received, never a re-encoding",
        resign(worked, orjson_sig), "invalid_signature")
    add("wrong-key", "signed with another key", b("execute_request", key=OTHER_KEY,
        idents=[CLIENT_IDENT]), "invalid_signature")
    add("wrong-scheme-length",
        "hmac-sha512 signature to an hmac-sha256 receiver (128 hex characters, not 64)",
        b("execute_request", scheme="hmac-sha512", idents=[CLIENT_IDENT]), "invalid_signature")
    add("wrong-scheme-same-length",
        "hmac-sha3_256 signature to an hmac-sha256 receiver (same length, other digest)",
        b("execute_request", scheme="hmac-sha3_256", idents=[CLIENT_IDENT]),
        "invalid_signature")

    # -- rejected: replay ---------------------------------------------------
    add("duplicate", "the worked example again: its signature is in the history",
        worked, "duplicate", seen=(sig,))
    add("duplicate-before-verification",
        "an invalid signature already in the history is reported as a duplicate: the "
        "history is checked before the HMAC",
        resign(worked, sig.upper()), "duplicate", seen=(sig.upper(),))

    # -- rejected: unsigned and malformed -------------------------------------
    add("unsigned", "a keyed receiver gets an empty signature frame",
        resign(worked, b""), "unsigned")
    add("unsigned-short", "empty signature and too few frames: 'unsigned' is checked first",
        [CLIENT_IDENT, DELIM, b"", worked[3]], "unsigned")
    short = [CLIENT_IDENT, DELIM, b"", worked[3], worked[4]]
    add("malformed-signed-short",
        "a correct signature over the only two dict frames present: rejected as malformed, "
        "after the signature was verified and recorded",
        resign(short, hmac_hex(KEY, "hmac-sha256", short[3:])), "malformed")
    add("invalid-short",
        "too few frames with a wrong signature: the signature check comes first",
        resign(short, sig), "invalid_signature")
    add("malformed-no-key-short", "a receiver without a key gets too few frames",
        short, "malformed", key=b"")
    add("malformed-no-delimiter", "no <IDS|MSG> frame at all",
        worked[2:], "malformed")
    add("malformed-nothing-after-delimiter",
        "the delimiter is the last frame (jupyter_client fails on the missing signature "
        "frame with IndexError)",
        [CLIENT_IDENT, DELIM], "malformed")
    add("malformed-nothing-after-delimiter-no-key",
        "the delimiter is the last frame, receiver without a key",
        [CLIENT_IDENT, DELIM], "malformed", key=b"")
    return out


def build_vectors(session_class: type = kernelwire.Session) -> list[dict]:
    """All vectors, each confirmed by ``session_class`` and by jupyter_client."""
    vectors = []
    for case in cases(session_class):
        ours = receive(session_class, case.receiver, case.frames)
        theirs = receive(jc_session.Session, case.receiver, case.frames)
        if ours != theirs:
            raise AssertionError(f"{case.name}: kernelwire {ours} != jupyter_client {theirs}")
        if ours.verdict != case.verdict:
            raise AssertionError(f"{case.name}: expected {case.verdict}, got {ours}")
        expected = reference_signature(case.receiver, case.frames)
        if expected is not None:
            d = case.frames.index(DELIM)
            signed = case.frames[d + 2 : d + 6]
            for cls in (session_class, jc_session.Session):
                signer = case.receiver.session(cls)
                if signer.sign(signed) != expected.encode():
                    raise AssertionError(f"{case.name}: {cls} signs differently")
        vectors.append(
            {
                "name": case.name,
                "description": case.description,
                "key_hex": case.receiver.key.hex(),
                "scheme": case.receiver.scheme,
                "packer": case.receiver.packer,
                "seen_hex": [s.hex() for s in case.receiver.seen],
                "frames_hex": [f.hex() for f in case.frames],
                "expected_signature": expected,
                "verdict": ours.verdict,
                "records_signature": ours.recorded,
                "python_error": ours.error,
            }
        )
    names = [v["name"] for v in vectors]
    if len(set(names)) != len(names):
        raise AssertionError("vector names must be unique")
    return vectors


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------


def render_files(vectors: list[dict]) -> dict[str, str]:
    """File name -> content for tests/vectors/."""
    meta = {
        "format": FORMAT,
        "generator": "scripts/make_vectors.py",
        "about": "Jupyter wire-protocol messages as received, with the verdict a receiver "
        "must reach; see docs/wire-protocol.md",
    }
    accepted = [v for v in vectors if v["verdict"] == "valid"]
    rejected = [v for v in vectors if v["verdict"] != "valid"]
    files = {}
    for name, group in (("accepted.json", accepted), ("rejected.json", rejected)):
        files[name] = json.dumps({**meta, "vectors": group}, indent=1, ensure_ascii=False) + "\n"
    files["vectors.txt"] = render_text(vectors)
    return files


def render_text(vectors: list[dict]) -> str:
    """The same vectors as plain lines, for parsers in languages without JSON at hand.

    One ``keyword value`` per line; hex values may be empty; a missing
    ``signature`` line means the message has no signature frame.
    """
    lines = [
        f"# {FORMAT}: generated by scripts/make_vectors.py, see docs/wire-protocol.md",
        "# vector NAME / scheme hmac-NAME / key HEX / seen HEX* / frame HEX+ /",
        "# signature EXPECTED-HEX-DIGEST? / verdict V / records 0|1 / end",
    ]
    for v in vectors:
        lines.append(f"vector {v['name']}")
        lines.append(f"scheme {v['scheme']}")
        lines.append(f"key {v['key_hex']}")
        lines += [f"seen {s}" for s in v["seen_hex"]]
        lines += [f"frame {f}" for f in v["frames_hex"]]
        if v["expected_signature"] is not None:
            lines.append(f"signature {v['expected_signature']}")
        lines.append(f"verdict {v['verdict']}")
        lines.append(f"records {int(v['records_signature'])}")
        lines.append("end")
    return "\n".join(lines) + "\n"


def worked_example_markdown(vectors: list[dict]) -> str:
    """The worked example's byte listing for docs/wire-protocol.md, from the vector."""
    v = next(v for v in vectors if v["name"] == "worked-example")
    frames = [bytes.fromhex(f) for f in v["frames_hex"]]
    key = bytes.fromhex(v["key_hex"]).decode()
    roles = ["identity", "delimiter", "signature", "header", "parent_header", "metadata",
             "content"]
    listing = [
        f"{i}  {role:<13} {len(frame):>3} bytes  {frame!r}"
        for i, (role, frame) in enumerate(zip(roles, frames, strict=True))
    ]
    signed = b"".join(frames[3:7])
    return "\n".join(
        [
            f"Receiver and sender share the key `{key}` (its UTF-8 bytes, {len(key)} bytes) "
            f"and the scheme `{v['scheme']}`; the packer is `json`. The message as the "
            "kernel's shell ROUTER socket receives it, frame by frame (Python bytes "
            "literals):",
            "",
            "```text",
            *listing,
            "```",
            "",
            f"The signed input is frames 3, 4, 5 and 6 concatenated, {len(signed)} bytes, "
            "nothing added between them:",
            "",
            "```text",
            signed.decode(),
            "```",
            "",
            f"Its HMAC-SHA256 under the key, as lowercase hex, is frame 2: "
            f"`{v['expected_signature']}`.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--worked-example", action="store_true", help="print the doc's example")
    args = parser.parse_args(argv)
    vectors = build_vectors()
    if args.worked_example:
        print(worked_example_markdown(vectors))
        return 0
    stale = []
    for name, text in render_files(vectors).items():
        path = VECTOR_DIR / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale:", ", ".join(stale), file=sys.stderr)
        return 1
    print(f"{len(vectors)} vectors ({kernelwire.implementation} core, cross-checked against "
          f"jupyter_client) {'up to date' if args.check else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
