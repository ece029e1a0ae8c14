"""Security properties of a Session, on both cores.

Timing is never asserted here: scripts/security_timing.py measures the
signature comparison and the replay-history culling cost.
"""

from __future__ import annotations

import hmac
import io
import logging
import os
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import zmq
from regressions.hostile_oracle import jc_session_class

from kernelwire import _shared_steps

JCSession = jc_session_class()
KEY = b"kw-TOP-SECRET-4c1f0e9a7b"
KEY_FORMS = [KEY.decode(), KEY.hex(), repr(KEY)[2:-1]]
SOURCE = Path(__file__).resolve().parent.parent / "_ext"


def signed(session, msg_type="execute_request", **kw):
    return session.serialize(session.msg(msg_type, **kw))[1:]  # drop the delimiter


def verdict(session, frames, **kw):
    try:
        session.deserialize(list(frames), **kw)
    except Exception as e:  # the verdict is the exception
        return type(e), str(e)
    return None, None


# -- constant-time comparison --------------------------------------------------


class _SpyCompare:
    """Wraps hmac.compare_digest and records what it compared."""

    def __init__(self):
        self.calls = []

    def __call__(self, a, b):
        self.calls.append((a, b))
        return hmac.compare_digest(a, b)


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-sha3_256", "hmac-blake2b"])
def test_signature_check_uses_compare_digest(Session_, monkeypatch, scheme):
    """Both cores check every signature through the one compare: length, then compare_digest."""
    session = Session_(key=KEY, signature_scheme=scheme)
    spy = _SpyCompare()
    assert _shared_steps.compare_digest is hmac.compare_digest
    monkeypatch.setattr(_shared_steps, "compare_digest", spy)
    good = signed(session)
    bad = [good[0][:-1] + (b"0" if good[0][-1:] != b"0" else b"1")] + good[1:]
    short = [good[0][:-2]] + good[1:]
    assert verdict(session, good) == (None, None)
    assert verdict(session, bad)[0] is ValueError
    assert verdict(session, short)[0] is ValueError
    # the short one never reached compare_digest: its length decided
    assert [a for a, _ in spy.calls] == [good[0], bad[0]]
    assert all(len(a) == len(b) for a, b in spy.calls)


def test_one_constant_time_compare():
    """No core compares signatures any other way (no ==, no memcmp, no second helper)."""
    pyx = "".join(p.read_text() for p in SOURCE.glob("*.p[yx]*")) if SOURCE.exists() else ""
    py = (Path(_shared_steps.__file__).parent / "_pycore.py").read_text()
    for text in [py, pyx] if pyx else [py]:
        assert "signature_matches(signature" in text
        assert "compare_digest" not in text
        assert "signature ==" not in text and "== signature" not in text
        assert "memcmp(signature" not in text


def test_compiled_hmac_active_for_default_scheme(Session_, impl):
    """The default scheme runs on the compiled HMAC; forging any hex digit is caught."""
    session = Session_(key=KEY)
    if impl == "cython" and sys.platform == "linux":
        assert session._kw.compiled_hmac
    good = signed(session)
    for i in (0, len(good[0]) // 2, len(good[0]) - 1):
        forged = bytearray(good[0])
        forged[i] = ord("0") if forged[i] != ord("0") else ord("1")
        frames = [bytes(forged)] + good[1:]
        assert verdict(session, frames)[0] is ValueError
        assert verdict(JCSession(key=KEY), frames)[0] is ValueError


# -- replay ----------------------------------------------------------------------


def test_replay_rejected(Session_):
    sender, receiver = Session_(key=KEY), Session_(key=KEY)
    frames = signed(sender)
    assert verdict(receiver, frames, content=False) == (None, None)  # a peek records nothing
    assert verdict(receiver, frames) == (None, None)
    kind, text = verdict(receiver, frames)
    assert kind is ValueError and text.startswith("Duplicate Signature")
    assert verdict(receiver, frames, content=False)[0] is ValueError


def test_replay_rejected_over_a_socket(Session_):
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        b.rcvtimeo = 5000
        a.bind("inproc://replay")
        b.connect("inproc://replay")
        sender, receiver = Session_(key=KEY), Session_(key=KEY)
        sent = sender.send(a, "execute_request", content={"code": "rm -rf /"}, ident=b"peer")
        captured = b.recv_multipart()  # what an attacker saw on the wire
        a.send_multipart(captured)
        _, msg = receiver.recv(b, mode=0)
        assert msg["header"]["msg_id"] == sent["header"]["msg_id"]
        a.send_multipart(captured)  # replayed
        with pytest.raises(ValueError, match="Duplicate Signature"):
            receiver.recv(b, mode=0)
        clone = receiver.clone()  # a clone keeps the history
        a.send_multipart(captured)
        with pytest.raises(ValueError, match="Duplicate Signature"):
            clone.recv(b, mode=0)
    finally:
        a.close(0)
        b.close(0)
        ctx.term()


def test_invalid_message_still_burns_its_signature(Session_):
    """As jupyter_client: a signature is recorded before it is checked."""
    receiver = Session_(key=KEY)
    frames = signed(Session_(key=b"other key"))
    assert verdict(receiver, frames)[1].startswith("Invalid Signature")
    assert verdict(receiver, frames)[1].startswith("Duplicate Signature")


# -- bounded history ---------------------------------------------------------------


@pytest.mark.parametrize("size", [100, 1000])
def test_history_bounded_under_flood(Session_, size):
    sender = Session_(key=KEY)
    receiver = Session_(key=KEY, digest_history_size=size)
    biggest = 0
    for _ in range(5 * size):
        receiver.deserialize(signed(sender))
        biggest = max(biggest, len(receiver.digest_history))
    assert biggest <= size
    assert len(receiver.digest_history) >= size * 8 // 10  # culling removes ~10%, not all


def test_history_bounded_at_default_size(Session_):
    session = Session_(key=KEY)
    assert session.digest_history_size == 2**16
    for i in range(2**16 + 5000):
        session._add_digest(b"%064x" % i)
        assert len(session.digest_history) <= 2**16
    assert len(session.digest_history) > 2**16 * 8 // 10


def test_cull_matches_jupyter_client_sizes(Session_):
    ours, theirs = Session_(key=KEY), JCSession(key=KEY)
    for s in (ours, theirs):
        s.digest_history_size = 100
        for i in range(101):
            s._add_digest(b"%d" % i)
    assert len(ours.digest_history) == len(theirs.digest_history) == 91
    assert ours.digest_history <= set(b"%d" % i for i in range(101))


# -- keys ------------------------------------------------------------------------------


def test_empty_key_warns(Session_, caplog):
    with caplog.at_level(logging.WARNING):
        Session_(key=b"")
    assert any("signing is disabled" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("sender_kw", "expected"),
    [
        ({"key": b"another key"}, "Invalid Signature"),
        ({"key": KEY, "signature_scheme": "hmac-sha512"}, "Invalid Signature"),
        ({"key": KEY, "signature_scheme": "hmac-md5"}, "Invalid Signature"),
        ({"key": KEY, "signature_scheme": "hmac-sha3_256"}, "Invalid Signature"),
        ({"key": b""}, "Unsigned Message"),
    ],
)
def test_other_scheme_or_key_rejected(Session_, sender_kw, expected):
    frames = signed(Session_(**sender_kw), content={"code": "x"})
    for receiver in (Session_(key=KEY), JCSession(key=KEY)):
        kind, text = verdict(receiver, frames)
        assert kind is ValueError and text.startswith(expected), text


def test_key_never_leaks(Session_, caplog, capsys):
    """Not in reprs, exception texts, debug output or log records."""
    seen = []
    with caplog.at_level(logging.DEBUG):
        session = Session_(key=KEY, debug=True)
        seen += [repr(session), str(session), repr(session._kw)]
        seen += [repr(getattr(session._kw, name, None)) for name in dir(session._kw)]
        out = io.StringIO()
        with redirect_stdout(out):
            frames = signed(session, content={"x": 1})
            session.deserialize(list(frames))
            session.send(None, "status", content={"a": 1})
            for bad in (
                frames,  # duplicate
                [b"00" * 32] + frames[1:],  # invalid
                [b""] + frames[1:],  # unsigned
                frames[:3],  # malformed
                [b"zz"],
                None,
            ):
                kind, text = verdict(session, bad if bad is None else list(bad))
                assert kind is not None
                seen.append(text)
            session.pid = -1  # pretend to be a forked child
            assert session.send(None, "status") is None
        seen.append(out.getvalue())
    seen += [r.getMessage() for r in caplog.records]
    captured = capsys.readouterr()
    seen += [captured.out, captured.err]
    text = "\n".join(seen)
    assert "signature" in text.lower() or "Signature" in text  # the errors were captured
    for form in KEY_FORMS:
        assert form not in text


# -- fork -----------------------------------------------------------------------------

FORK_CHILD = textwrap.dedent(
    """
    import logging, os, sys, warnings
    logging.basicConfig()
    warnings.simplefilter("ignore")  # fork() with zmq's threads running: expected here
    import zmq
    from jupyter_client.session import Session as JCSession
    from conftest import session_class
    Session = session_class(sys.argv[1])
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    pull.rcvtimeo = 3000
    sessions = [Session(key=b"k"), JCSession(key=b"k")]
    for s in sessions:
        assert s.send(push, "before_fork") is not None
        pull.recv_multipart()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        results = [s.send(push, "from_child") for s in sessions]
        os.write(w, ",".join("None" if m is None else "sent" for m in results).encode())
        os._exit(0)
    os.close(w)
    print(os.read(r, 100).decode())
    os.waitpid(pid, 0)
    try:
        pull.recv_multipart()
        print("leaked")
    except zmq.Again:
        print("nothing sent")
    assert sessions[0].send(push, "parent_after_fork") is not None
    print(Session.implementations()["core"])
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_refuses_to_send(impl, tmp_path):
    script = tmp_path / "fork_child.py"
    script.write_text(FORK_CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent)] + sys.path))
    proc = subprocess.run(
        [sys.executable, str(script), impl],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "None,None"  # kernelwire and jupyter_client both refuse
    assert "nothing sent" in proc.stdout and "leaked" not in proc.stdout
    assert "attempted to send message from fork" in proc.stderr
    assert lines[-1] == impl


# -- re-keying while another thread signs ---------------------------------------


def test_rekey_while_signing_large_frames(Session_):
    """A re-key on one thread never tears a signature being made on another.

    Large frames are hashed without the GIL; every signature must be the HMAC
    of the frames under one of the two keys, whole, never a mix.
    """
    import threading
    import time

    keys = (b"first-key" * 4, b"second-key" * 4)
    session = Session_(key=keys[0])
    frames = [b"h" * 100, b"{}", b"{}", os.urandom(4 << 20)]
    valid = {JCSession(key=k).sign(frames) for k in keys}
    stop = threading.Event()
    rekeys = 0

    def rekey():
        nonlocal rekeys
        while not stop.is_set() and rekeys < 20_000:
            session.key = keys[rekeys % 2]
            rekeys += 1

    thread = threading.Thread(target=rekey)
    thread.start()
    signatures = []
    deadline = time.monotonic() + 10
    try:
        while len(signatures) < 40 and time.monotonic() < deadline:
            signatures.append(session.sign(frames))
    finally:
        stop.set()
        thread.join(10)
    assert rekeys > 0 and len(signatures) >= 5
    assert set(signatures) <= valid, "a signature matched neither key"


def test_threads_signing_small_frames_while_rekeying(Session_):
    """Small messages are signed on one reused state per key, guarded by the GIL.

    Four threads sign small and large messages through one Session while a
    fifth re-keys it; every signature must be the whole HMAC under one key.
    """
    import threading
    import time

    keys = (b"first-key" * 4, b"second-key" * 4)
    session = Session_(key=keys[0])
    small = [b"h" * 200, b"{}", b"{}", b'{"code": "1"}']
    large = [b"h" * 200, b"{}", b"{}", os.urandom(1 << 17)]
    valid = {id(f): {JCSession(key=k).sign(f) for k in keys} for f in (small, large)}
    stop = threading.Event()
    bad: list = []
    counts = [0] * 4

    def sign(n):
        deadline = time.monotonic() + 5
        while not stop.is_set() and counts[n] < 3000 and time.monotonic() < deadline:
            frames = large if counts[n] % 50 == 0 else small
            signature = session.sign(frames)
            if signature not in valid[id(frames)]:
                bad.append(signature)
            counts[n] += 1

    signers = [threading.Thread(target=sign, args=(n,)) for n in range(4)]
    for t in signers:
        t.start()
    rekeys = 0
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in signers) and rekeys < 5000 and time.monotonic() < deadline:
        session.key = keys[rekeys % 2]
        rekeys += 1
    stop.set()
    for t in signers:
        t.join(10)
    assert rekeys > 0 and min(counts) > 100
    assert not bad, f"{len(bad)} signatures matched neither key"
