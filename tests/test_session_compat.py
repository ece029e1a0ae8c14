"""kernelwire.Session against jupyter_client's Session: same bytes, same dicts, same errors."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
import zmq
from jupyter_client import session as jc_session

DATE = datetime(2026, 11, 21, 9, 30, 15, 123456, tzinfo=timezone.utc)
KEY = b"a0436f6c-1916-498b-8eb9-e81ab9368e84"
PACKERS = [
    "orjson", "json", "pickle",
    pytest.param("msgpack", marks=pytest.mark.needs(
        "msgpack", reason="jupyter_client's msgpack packer is msgpack.packb")),
]  # fmt: skip
SCHEMES = ["hmac-sha256", "hmac-sha512", "hmac-md5", "hmac-sha3_256", "hmac-blake2b"]
CONTENT = {
    "code": "print('héllo wörld')",
    "silent": False,
    "store_history": True,
    "user_expressions": {},
    "allow_stdin": True,
    "stop_on_error": True,
}


def fixed_header(msg_type="execute_request", date=DATE, msg_id="abc_1_0"):
    return {
        "msg_id": msg_id,
        "msg_type": msg_type,
        "username": "alice",
        "session": "abc",
        "date": date,
        "version": "5.4",
    }


def pair(Session_, **kw):
    return Session_(key=KEY, **kw), jc_session.Session(key=KEY, **kw)


@pytest.mark.parametrize("packer", PACKERS)
def test_frames_byte_identical(Session_, packer):
    kw, jc = pair(Session_, packer=packer, session="abc", username="alice")
    parent = {"header": fixed_header("kernel_info_request", msg_id="p_1_0")}
    for ident in (None, b"id0", [b"id0", b"id1"]):
        m_kw = kw.msg("execute_request", content=CONTENT, parent=parent,
                      header=fixed_header(), metadata={"x": 1})
        m_jc = jc.msg("execute_request", content=CONTENT, parent=parent,
                      header=fixed_header(), metadata={"x": 1})
        assert m_kw == m_jc
        assert list(m_kw) == list(m_jc)
        assert kw.serialize(m_kw, ident) == jc.serialize(m_jc, ident)


def test_date_without_microseconds_drops_them(Session_):
    kw, jc = pair(Session_)
    header = fixed_header(date=DATE.replace(microsecond=0))
    frames = kw.serialize(kw.msg("x", header=header))
    assert b'"date":"2026-11-21T09:30:15Z"' in frames[2]
    assert frames == jc.serialize(jc.msg("x", header=header))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("packer", PACKERS)
def test_cross_verification(Session_, packer, scheme):
    kw, jc = pair(Session_, packer=packer, signature_scheme=scheme)
    parent = jc.msg("kernel_info_request")
    for sender, receiver in ((jc, kw), (kw, jc)):
        sent = sender.msg("execute_reply", content=CONTENT, parent=parent, metadata={"m": [1, 2]})
        frames = sender.serialize(sent, [b"route"])
        idents, rest = receiver.feed_identities(frames + [b"buffer"])
        got = receiver.deserialize(rest)
        assert idents == [b"route"]
        assert got["header"] == sent["header"]
        assert got["parent_header"] == sent["parent_header"]
        assert got["content"] == sent["content"]
        assert got["metadata"] == sent["metadata"]
        assert got["buffers"] == [b"buffer"]
        assert isinstance(got["buffers"][0], memoryview)


def test_deserialized_dict_equals_jupyter_clients(Session_):
    kw, jc = pair(Session_)
    parent = jc.msg("kernel_info_request")
    frames = jc.serialize(jc.msg("status", content={"when": "2020-01-01T00:00:00Z"}, parent=parent))
    _, rest = jc.feed_identities(frames)
    ours, theirs = kw.deserialize(list(rest)), jc.deserialize(list(rest))
    assert ours == theirs
    assert list(ours) == list(theirs)
    assert type(ours["header"]["date"].tzinfo) is type(theirs["header"]["date"].tzinfo)
    # content is not date-parsed, exactly as upstream
    assert ours["content"]["when"] == "2020-01-01T00:00:00Z"


def test_signature_matches_plain_hmac(Session_):
    s = Session_(key=KEY, signature_scheme="hmac-sha512")
    parts = [b"header", b"parent", b"metadata", b"content"]
    expected = hmac.new(KEY, b"".join(parts), hashlib.sha512).hexdigest().encode()
    assert s.sign(parts) == expected
    assert Session_(key=b"").sign(parts) == b""


def test_long_key_and_key_change(Session_):
    s = Session_(key=b"k" * 300)
    parts = [b"a", b"b", b"c", b"d"]
    assert s.sign(parts) == hmac.new(b"k" * 300, b"abcd", hashlib.sha256).hexdigest().encode()
    s.key = b"other"
    assert s.sign(parts) == hmac.new(b"other", b"abcd", hashlib.sha256).hexdigest().encode()
    s.signature_scheme = "hmac-md5"
    assert s.sign(parts) == hmac.new(b"other", b"abcd", hashlib.md5).hexdigest().encode()


def test_auth_set_by_hand_is_honoured(Session_):
    s = Session_(key=KEY)
    s.auth = hmac.HMAC(b"another key", digestmod=hashlib.sha256)
    parts = [b"a", b"b", b"c", b"d"]
    assert s.sign(parts) == hmac.new(b"another key", b"abcd", hashlib.sha256).hexdigest().encode()


def test_sign_accepts_buffers_like_upstream(Session_):
    kw, jc = pair(Session_)
    parts = [memoryview(b"header"), bytearray(b"parent"), b"m", b"c"]
    assert kw.sign(parts) == jc.sign(parts)
    with pytest.raises(TypeError):
        kw.sign(["not bytes"])


def test_packer_switch_reaches_the_core(Session_):
    s = Session_(key=KEY)
    s.packer = "json"
    assert s.pack is jc_session.json_packer
    frames = s.serialize(s.msg("x", content={"a": 1}))
    assert frames[-1] == b'{"a": 1}'
    s.packer = "pickle"
    frames = s.serialize(s.msg("x", content={"a": 1}))
    assert frames[-1] == jc_session.pickle_packer({"a": 1})
    assert s.deserialize(frames[1:])["content"] == {"a": 1}


def test_dotted_packer_returning_str_is_refused(Session_):
    # json.dumps returns str: refused at construction, as upstream does
    with pytest.raises(ValueError, match="bytes are required"):
        Session_(packer="json.dumps", unpacker="json.loads")


@pytest.mark.needs("msgpack", reason="the dotted names it loads are msgpack.packb/unpackb")
def test_dotted_packer_names_working(Session_):
    s = Session_(key=KEY, packer="msgpack.packb", unpacker="msgpack.unpackb")
    frames = s.serialize(s.msg("x", content={"a": [1, 2]}))
    assert s.deserialize(frames[1:])["content"] == {"a": [1, 2]}


def test_msg_id_format_and_counter(Session_):
    s = Session_(session="sess")
    first = s.msg_id
    second = s.msg_id
    assert first == f"sess_{os.getpid()}_0"
    assert second == f"sess_{os.getpid()}_1"
    assert s.message_count == 2
    s.session = "new"
    assert s.msg_id == f"new_{os.getpid()}_2"


def test_header_shape(Session_):
    s = Session_(username="bob", session="sess")
    h = s.msg_header("kernel_info_request")
    assert list(h) == ["msg_id", "msg_type", "username", "session", "date", "version"]
    assert h["version"] == jc_session.protocol_version
    assert h["date"].tzinfo is timezone.utc
    assert abs(h["date"] - datetime.now(timezone.utc)) < timedelta(seconds=5)


def test_metadata_default_is_copied(Session_):
    s = Session_(metadata={"a": 1})
    m = s.msg("x", metadata={"b": 2})
    assert m["metadata"] == {"a": 1, "b": 2}
    assert s.metadata == {"a": 1}


def test_parent_forms(Session_):
    s = Session_()
    parent = s.msg("p")
    assert s.msg("x", parent=parent)["parent_header"] is parent["header"]
    assert s.msg("x", parent=parent["header"])["parent_header"] == parent["header"]
    assert s.msg("x", parent=jc_session.Message(parent))["parent_header"] == parent["header"]
    assert s.msg("x", parent={})["parent_header"] == {}
    with pytest.raises(KeyError):
        s.msg("x", parent={"no": "header"})


# -- receiving --------------------------------------------------------------------


def test_peek_records_nothing(Session_):
    s = Session_(key=KEY)
    frames = s.serialize(s.msg("x", content={"a": 1}))[1:]
    peeked = s.deserialize(frames, content=False)
    assert peeked["content"] == frames[4]
    assert len(s.digest_history) == 0
    s.deserialize(frames)
    assert frames[0] in s.digest_history
    with pytest.raises(ValueError, match="Duplicate Signature"):
        s.deserialize(frames)


def test_copy_false_with_frames(Session_):
    s = Session_(key=KEY)
    frames = s.serialize(s.msg("x", content={"a": 1}), [b"id"]) + [b"buf"]
    zframes = [zmq.Frame(f) for f in frames]
    idents, rest = s.feed_identities(zframes, copy=False)
    assert idents == [b"id"]
    msg = s.deserialize(rest, copy=False)
    assert msg["content"] == {"a": 1}
    assert bytes(msg["buffers"][0]) == b"buf"
    with pytest.raises(ValueError, match="DELIM not in msg_list"):
        s.feed_identities([zmq.Frame(b"x")], copy=False)


def test_extract_dates_monkeypatch_is_honoured(Session_, monkeypatch):
    s = Session_(key=KEY)
    frames = s.serialize(s.msg("x"))[1:]
    monkeypatch.setattr(jc_session, "extract_dates", lambda obj: obj)
    assert isinstance(s.deserialize(frames)["header"]["date"], str)
    monkeypatch.undo()
    frames = s.serialize(s.msg("x"))[1:]
    assert isinstance(s.deserialize(frames)["header"]["date"], datetime)


def test_adapt_adds_missing_date(Session_):
    kw, jc = pair(Session_)
    header = {"msg_id": "1", "msg_type": "x", "username": "u", "session": "s", "version": "5.3"}
    frames = kw.serialize(kw.msg("x", header=header))[1:]
    msg = kw.deserialize(frames)
    assert isinstance(msg["header"]["date"], datetime)


def test_old_protocol_is_adapted_like_upstream(Session_):
    kw, jc = pair(Session_)
    header = {"msg_id": "1", "msg_type": "execute_request", "username": "u", "session": "s",
              "date": "2020-01-01T00:00:00Z", "version": "4.1"}
    frames = jc.serialize(jc.msg("execute_request", header=header, content={"code": "1"}))[1:]
    assert kw.deserialize(list(frames)) == jc.deserialize(list(frames))


BAD_INPUTS = {
    "empty": [],
    "signature only": [b"sig"],
    "short": [b"sig", b"{}", b"{}"],
    "unsigned": [b"", b"{}", b"{}", b"{}", b"{}"],
    "non-hex signature": [b"zz" * 32, b"{}", b"{}", b"{}", b"{}"],
    "short signature": [b"ab", b"{}", b"{}", b"{}", b"{}"],
    "non-ascii signature": ["é".encode() * 32, b"{}", b"{}", b"{}", b"{}"],
    "str signature": ["abc", b"{}", b"{}", b"{}", b"{}"],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_like_upstream(Session_, case):
    kw, jc = pair(Session_)
    frames = BAD_INPUTS[case]
    with pytest.raises(Exception) as theirs:
        jc.deserialize(list(frames))
    with pytest.raises(Exception) as ours:
        kw.deserialize(list(frames))
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)
    # still usable afterwards
    good = kw.serialize(kw.msg("x"))[1:]
    assert kw.deserialize(good)["msg_type"] == "x"


def _signed(session, header_bytes, parent=b"{}", metadata=b"{}", content=b"{}"):
    parts = [header_bytes, parent, metadata, content]
    return [session.sign(parts)] + parts


@pytest.mark.parametrize(
    "header",
    [b"\xff\xfe not utf8", b"{not json", b"[1, 2]", b'{"msg_type": "x"}', b"null", b'"str"'],
)
def test_bad_payloads_raise_like_upstream(Session_, header):
    kw, jc = pair(Session_)
    for session in (kw, jc):
        session.digest_history.clear()
    with pytest.raises(Exception) as theirs:
        jc.deserialize(_signed(jc, header))
    with pytest.raises(Exception) as ours:
        kw.deserialize(_signed(kw, header))
    assert type(ours.value) is type(theirs.value)


def test_feed_identities_errors_like_upstream(Session_):
    kw, jc = pair(Session_)
    for frames in ([b"a", b"b"], [], (b"a", b"<IDS|MSG>", b"c")):
        try:
            expected = jc.feed_identities(frames)
        except Exception as e:
            with pytest.raises(type(e)) as ours:
                kw.feed_identities(frames)
            assert str(ours.value) == str(e)
        else:
            assert kw.feed_identities(frames) == expected


@pytest.mark.parametrize("bad", [1, "text", [1, 2]])
def test_bad_buffers_raise_like_upstream(Session_, bad):
    kw, jc = pair(Session_)
    with pytest.raises(TypeError, match="buffer protocol"):
        kw.send(None, "x", buffers=[bad])
    with pytest.raises(TypeError, match="buffer protocol"):
        jc.send(None, "x", buffers=[bad])


def test_non_contiguous_buffer_rejected(Session_):
    s = Session_()
    with pytest.raises(ValueError, match="not contiguous"):
        s.send(None, "x", buffers=[memoryview(b"abcdef")[::2]])


def test_bad_content_type(Session_):
    s = Session_()
    with pytest.raises(TypeError, match="Content incorrect type"):
        s.serialize({"header": {}, "parent_header": {}, "metadata": {}, "content": 5})


# -- history -----------------------------------------------------------------------


def test_cull_sizes_and_no_sorting(Session_):
    s = Session_(digest_history_size=100)
    # mixed, unorderable entries: sorting them (as upstream does) would raise TypeError
    for i in range(50):
        s._add_digest(f"str-{i}")
        s._add_digest(f"bytes-{i}".encode())
    assert len(s.digest_history) == 100
    s._add_digest(b"one more")
    assert len(s.digest_history) == 91
    s.digest_history_size = 0
    s._add_digest(b"ignored")
    assert b"ignored" not in s.digest_history


def test_clone_copies_history_and_traits(Session_):
    s = Session_(key=KEY, packer="json", username="carol")
    s._add_digest(b"seen")
    c = s.clone()
    assert type(c) is type(s)
    assert c.key == s.key and c.username == "carol" and c.pack is jc_session.json_packer
    assert c.digest_history == {b"seen"} and c.digest_history is not s.digest_history
    frames = c.serialize(c.msg("x"))[1:]
    assert s.deserialize(frames)["msg_type"] == "x"
    c._add_digest(b"only in clone")
    assert b"only in clone" not in s.digest_history


def test_threads_share_one_session(Session_):
    s = Session_(key=KEY)
    ids: list[str] = []
    errors: list[BaseException] = []
    frames_per_thread = [
        [s.serialize(s.msg("x", content={"t": t, "i": i}))[1:] for i in range(500)]
        for t in range(4)
    ]

    def work(frames_list):
        try:
            local = [s.msg_id for _ in range(2000)]
            for frames in frames_list:
                s.deserialize(frames)
            ids.extend(local)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f,)) for f in frames_per_thread]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(ids) == len(set(ids)) == 8000
    assert len(s.digest_history) == 2000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_refuses_to_send(Session_):
    s = Session_()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    try:
        pid = os.fork()
        if pid == 0:  # child: send must be refused
            code = 0 if s.send(sock, "x") is None else 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert s.send(None, "x") is not None  # the parent still sends
    finally:
        sock.close(linger=0)
        ctx.term()


# -- implementation selection ----------------------------------------------------


def _implementation_in_subprocess(**env):
    out = subprocess.run(
        [sys.executable, "-c", "import kernelwire; print(kernelwire.implementation)"],
        env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def test_pure_forced_by_environment():
    assert _implementation_in_subprocess(KERNELWIRE_PURE="1") == "pure"


def test_compiled_is_the_default_when_built():
    from conftest import COMPILED

    expected = "cython" if COMPILED else "pure"
    assert _implementation_in_subprocess(KERNELWIRE_PURE="") == expected


def test_is_a_jupyter_client_session(Session_):
    assert issubclass(Session_, jc_session.Session)
    assert Session_().clone().__class__ is Session_
