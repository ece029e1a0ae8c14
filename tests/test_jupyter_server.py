"""jupyter_server on kernelwire serves a kernel over its v1 websocket protocol.

The server runs as ``KERNELWIRE_INSTALL=1 python -m jupyter_server`` (the
documented way) with the kernelwire kernelspec; the test is a plain
websocket client speaking the v1 binary framing, written here from the
protocol description: a little-endian uint64 count of offsets, the offsets,
then the channel name, header, parent header, metadata, content and buffers.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

import kernelwire

pytest.importorskip("jupyter_server")

V1 = "v1.kernel.websocket.jupyter.org"
TOKEN = "kernelwire-test-token"
TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    prefix = root / "prefix"
    subprocess.run(
        [sys.executable, "-m", "kernelwire", "install-kernelspec", "--prefix", str(prefix)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "KERNELWIRE"))}
    env.update(
        KERNELWIRE_INSTALL="1",
        KERNELWIRE_INSTALL_LOG=str(root / "install.log"),
        JUPYTER_PATH=str(prefix / "share" / "jupyter"),
        JUPYTER_CONFIG_DIR=str(root / "config"),
        JUPYTER_DATA_DIR=str(root / "data"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        IPYTHONDIR=str(root / "ipython"),
    )
    port = free_port()
    work = root / "work"
    work.mkdir()
    server_log = open(root / "server.log", "wb")  # closed at teardown
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",  # CI runs as root
            f"--ServerApp.root_dir={work}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=server_log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            api(base, "GET", "/api/status")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                server_log.close()
                pytest.fail((root / "server.log").read_text()[-3000:])
            time.sleep(0.2)
    try:
        kernel = api(base, "POST", "/api/kernels", {"name": "kernelwire"})
        yield base, kernel["id"], process, root
    finally:
        process.terminate()  # the server shuts its kernels down
        process.wait(timeout=30)
        server_log.close()


def api(base: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


def to_ws_v1(channel: str, parts: list[bytes]) -> bytes:
    chunks = [channel.encode(), *parts]
    start = 8 * (1 + len(chunks) + 1)  # the count, one offset per chunk, the end offset
    offsets = [start]
    for chunk in chunks:
        offsets.append(offsets[-1] + len(chunk))
    return struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets) + b"".join(chunks)


def from_ws_v1(data: bytes) -> tuple[str, dict]:
    (count,) = struct.unpack_from("<Q", data)
    offsets = struct.unpack_from(f"<{count}Q", data, 8)
    chunks = [data[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]
    channel, header, parent, metadata, content, *buffers = chunks
    msg = {
        "header": json.loads(header),
        "parent_header": json.loads(parent),
        "metadata": json.loads(metadata),
        "content": json.loads(content),
        "buffers": buffers,
    }
    return channel.decode(), msg


def request(msg_type: str, content: dict) -> tuple[str, list[bytes]]:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": "test",
        "session": "ws-test-session",
        "date": datetime.now(timezone.utc).isoformat(),
        "version": "5.3",
    }
    parts = [json.dumps(part).encode() for part in (header, {}, {}, content)]
    return header["msg_id"], parts


async def open_ws(server):
    base, kernel_id, _, _ = server
    url = base.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels"
    return await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"}), subprotocols=[V1]
    )


async def close(ws) -> None:
    """Close and wait for the server's close frame, so no socket is left behind."""
    ws.close()
    while await ws.read_message() is not None:
        pass


async def replies(ws, msg_id: str, until) -> list[tuple[str, dict]]:
    """Messages answering msg_id, up to and including the first for which until() is true."""
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        data = await ws.read_message()
        assert isinstance(data, bytes), "the v1 protocol sends binary frames"
        channel, msg = from_ws_v1(data)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append((channel, msg))
        if until(channel, msg):
            return seen
    raise TimeoutError(f"no end of replies to {msg_id}: {seen}")


def idle(channel: str, msg: dict) -> bool:
    return msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"


def test_server_process_installed_kernelwire(server):
    _, _, process, root = server
    records = [json.loads(line) for line in (root / "install.log").read_text().splitlines()]
    by_pid = {r["pid"]: r for r in records}
    assert process.pid in by_pid
    assert by_pid[process.pid]["jupyter_client_session"] == "kernelwire.session.Session"
    assert by_pid[process.pid]["implementation"] == kernelwire.implementation


async def test_v1_protocol_kernel_info(server):
    ws = await open_ws(server)
    try:
        assert ws.selected_subprotocol == V1
        msg_id, parts = request("kernel_info_request", {})
        await ws.write_message(to_ws_v1("shell", parts), binary=True)
        seen = await replies(ws, msg_id, lambda c, m: c == "shell")
        channel, reply = seen[-1]
        assert reply["header"]["msg_type"] == "kernel_info_reply"
        assert reply["content"]["status"] == "ok"
        assert reply["content"]["language_info"]["name"] == "python"
    finally:
        await close(ws)


async def test_v1_protocol_execute_on_a_kernelwire_kernel(server):
    ws = await open_ws(server)
    try:
        code = "print(type(get_ipython().kernel.session).__module__)\n1 / 0"
        msg_id, parts = request("execute_request", {"code": code, "silent": False})
        await ws.write_message(to_ws_v1("shell", parts), binary=True)
        seen = await replies(ws, msg_id, idle)
        streams = [m["content"]["text"] for c, m in seen if m["header"]["msg_type"] == "stream"]
        assert "".join(streams) == "kernelwire.session\n"
        errors = [m for c, m in seen if m["header"]["msg_type"] == "error"]
        assert errors and errors[0]["content"]["ename"] == "ZeroDivisionError"
        assert all(c == "iopub" for c, m in seen if m["header"]["msg_type"] != "execute_reply")
    finally:
        await close(ws)


async def test_v1_protocol_comm_buffers(server):
    ws = await open_ws(server)
    try:
        target = (
            "import comm\n"
            "def reverse(channel, msg):\n"
            "    channel.send({'sizes': [len(b) for b in msg['buffers']]},"
            " buffers=[bytes(b)[::-1] for b in msg['buffers']])\n"
            "comm.get_comm_manager().register_target('kernelwire-ws', reverse)\n"
        )
        msg_id, parts = request("execute_request", {"code": target, "silent": False})
        await ws.write_message(to_ws_v1("shell", parts), binary=True)
        await replies(ws, msg_id, idle)

        comm_id = uuid.uuid4().hex
        buffers = [b"\x00\x01\x02binary", os.urandom(100_000)]
        msg_id, parts = request(
            "comm_open", {"comm_id": comm_id, "target_name": "kernelwire-ws", "data": {}}
        )
        await ws.write_message(to_ws_v1("shell", parts + buffers), binary=True)
        seen = await replies(ws, msg_id, lambda c, m: m["header"]["msg_type"] == "comm_msg")
        _, echoed = seen[-1]
        assert echoed["content"]["comm_id"] == comm_id
        assert echoed["content"]["data"] == {"sizes": [9, 100_000]}
        assert echoed["buffers"] == [b[::-1] for b in buffers]
    finally:
        await close(ws)
