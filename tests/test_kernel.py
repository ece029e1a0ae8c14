"""Real kernels driven through jupyter_client: kernelwire and stock on either side.

Pairs: the kernelwire kernelspec with a stock client and with a kernelwire
client, and a stock ipykernel with a kernelwire client.  Each pair runs the
whole message repertoire, including interrupt and restart (last).
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import time
import uuid

import pytest
from jupyter_client import KernelManager
from jupyter_client import session as jc_session
from jupyter_client.kernelspec import KernelSpecManager

import kernelwire

TIMEOUT = 30
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
PAIRS = [
    "kernelwire-kernel/stock-client",
    "kernelwire-kernel/kernelwire-client",
    "stock-kernel/kernelwire-client",
]


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory):
    """The kernelwire kernelspec (installed by the CLI) and a stock one, in a temp prefix."""
    prefix = tmp_path_factory.mktemp("kernels")
    subprocess.run(
        [sys.executable, "-m", "kernelwire", "install-kernelspec", "--prefix", str(prefix)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    kernels = prefix / "share" / "jupyter" / "kernels"
    stock = kernels / "stock-python"
    stock.mkdir()
    stock_spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "stock",
        "language": "python",
        "env": {"KERNELWIRE_INSTALL": "0"},
    }
    (stock / "kernel.json").write_text(json.dumps(stock_spec))
    return [str(kernels)]


@pytest.fixture(scope="module", params=PAIRS)
def pair(request, kernel_dirs, tmp_path_factory):
    kernel_side, client_side = request.param.split("/")
    session_class = kernelwire.Session if client_side == "kernelwire-client" else jc_session.Session
    manager = KernelManager(
        kernel_name="kernelwire" if kernel_side == "kernelwire-kernel" else "stock-python",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs),
        session=session_class(),
        connection_file=str(tmp_path_factory.mktemp("conn") / "kernel.json"),
    )
    manager.start_kernel(cwd=str(tmp_path_factory.mktemp("cwd")))
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    yield request.param, manager, client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def collect(client, msg_id: str) -> tuple[dict, list[dict]]:
    """The reply to msg_id and the IOPub messages it caused, until idle."""
    reply = client.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = client.get_shell_msg(timeout=TIMEOUT)
    outputs = []
    while True:
        msg = client.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return reply, outputs
        outputs.append(msg)


def run(client, code: str, **kwargs) -> tuple[dict, list[dict]]:
    return collect(client, client.execute(code, **kwargs))


def stdout_of(outputs: list[dict]) -> str:
    return "".join(
        m["content"]["text"]
        for m in outputs
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


def test_sessions_are_the_expected_classes(pair):
    name, _, client = pair
    kernel_side, client_side = name.split("/")
    expected_client = (
        kernelwire.Session if client_side == "kernelwire-client" else jc_session.Session
    )
    assert type(client.session) is expected_client
    reply, outputs = run(client, "print(type(get_ipython().kernel.session).__module__)")
    assert reply["content"]["status"] == "ok"
    expected = (
        "kernelwire.session" if kernel_side == "kernelwire-kernel" else "jupyter_client.session"
    )
    assert stdout_of(outputs).strip() == expected


def test_kernel_info(pair):
    _, _, client = pair
    reply = collect(client, client.kernel_info())[0]
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["implementation"] == "ipython"
    assert reply["content"]["language_info"]["name"] == "python"
    assert reply["content"]["protocol_version"].startswith("5.")


def test_execute_and_stream(pair):
    _, _, client = pair
    reply, outputs = run(
        client, "import sys\nprint('hello', 6 * 7)\nprint('oops', file=sys.stderr)"
    )
    assert reply["content"]["status"] == "ok"
    assert isinstance(reply["content"]["execution_count"], int)
    assert stdout_of(outputs) == "hello 42\n"
    stderr = [m for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"]
    assert "".join(m["content"]["text"] for m in stderr) == "oops\n"
    assert any(m["msg_type"] == "execute_input" for m in outputs)


def test_execute_result_and_user_expressions(pair):
    _, _, client = pair
    reply, outputs = run(client, "x = 21\nx * 2", user_expressions={"double": "x * 2"})
    (result,) = [m for m in outputs if m["msg_type"] == "execute_result"]
    assert result["content"]["data"]["text/plain"] == "42"
    assert reply["content"]["user_expressions"]["double"]["data"]["text/plain"] == "42"


def test_error_with_traceback(pair):
    _, _, client = pair
    reply, outputs = run(client, "def f():\n    return 1 / 0\nf()")
    content = reply["content"]
    assert content["status"] == "error"
    assert content["ename"] == "ZeroDivisionError"
    (error,) = [m for m in outputs if m["msg_type"] == "error"]
    assert error["content"]["ename"] == "ZeroDivisionError"
    # IPython colours the traceback; IPython 8 (the last for Python 3.10) also
    # highlights the failing call character by character, splitting "f()"
    text = ANSI_ESCAPE.sub("", "\n".join(error["content"]["traceback"]))
    assert "----> 3 f()" in text
    assert "1 / 0" in text


def test_display_data(pair):
    _, _, client = pair
    code = (
        "from IPython.display import display\n"
        "display({'text/plain': 'plain', 'text/html': '<b>bold</b>'}, raw=True,"
        " metadata={'text/html': {'isolated': True}})"
    )
    reply, outputs = run(client, code)
    (shown,) = [m for m in outputs if m["msg_type"] == "display_data"]
    assert shown["content"]["data"] == {"text/plain": "plain", "text/html": "<b>bold</b>"}
    assert shown["content"]["metadata"] == {"text/html": {"isolated": True}}


def test_input_request(pair):
    _, _, client = pair
    msg_id = client.execute("answer = input('name? ')\nprint('got', answer)", allow_stdin=True)
    request = client.get_stdin_msg(timeout=TIMEOUT)
    assert request["msg_type"] == "input_request"
    assert request["content"]["prompt"] == "name? "
    client.input("kernelwire")
    reply, outputs = collect(client, msg_id)
    assert reply["content"]["status"] == "ok"
    assert stdout_of(outputs) == "got kernelwire\n"


def test_complete(pair):
    _, _, client = pair
    reply = collect(client, client.complete("import o", 8))[0]
    assert reply["content"]["status"] == "ok"
    assert "os" in reply["content"]["matches"]
    assert reply["content"]["cursor_end"] == 8


def test_inspect(pair):
    _, _, client = pair
    reply = collect(client, client.inspect("len", 3))[0]
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["found"] is True
    assert "len" in reply["content"]["data"]["text/plain"]


COMM_TARGET = """
import comm

def echo_target(channel, open_msg):
    # reply with every buffer reversed, then echo each later message's buffers
    buffers = [bytes(b)[::-1] for b in open_msg["buffers"]]
    channel.send({"opened": open_msg["content"]["data"]}, buffers=buffers)

    @channel.on_msg
    def echo(msg):
        channel.send(
            {"sizes": [len(b) for b in msg["buffers"]]},
            buffers=[bytes(b) * 2 for b in msg["buffers"]],
        )

comm.get_comm_manager().register_target("kernelwire-echo", echo_target)
"""


def comm_msgs(client, comm_id: str, count: int) -> list[dict]:
    found = []
    deadline = time.monotonic() + TIMEOUT
    while len(found) < count:
        msg = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == comm_id:
            found.append(msg)
    return found


def test_comm_with_binary_buffers(pair):
    _, _, client = pair
    assert run(client, COMM_TARGET)[0]["content"]["status"] == "ok"
    comm_id = uuid.uuid4().hex
    small, large = b"\x00\x01binary\xff", os.urandom(200_000)  # large: zero-copy path
    opening = client.session.msg(
        "comm_open", {"comm_id": comm_id, "target_name": "kernelwire-echo", "data": {"n": 1}}
    )
    opening["buffers"] = [small, large]
    client.shell_channel.send(opening)
    (opened,) = comm_msgs(client, comm_id, 1)
    assert opened["content"]["data"] == {"opened": {"n": 1}}
    assert [bytes(b) for b in opened["buffers"]] == [small[::-1], large[::-1]]

    message = client.session.msg("comm_msg", {"comm_id": comm_id, "data": {}})
    message["buffers"] = [memoryview(large)[:1000], b""]
    client.shell_channel.send(message)
    (echoed,) = comm_msgs(client, comm_id, 1)
    assert echoed["content"]["data"] == {"sizes": [1000, 0]}
    assert [bytes(b) for b in echoed["buffers"]] == [large[:1000] * 2, b""]


def test_interrupt(pair):
    _, manager, client = pair
    msg_id = client.execute("import time\nfor _ in range(600): time.sleep(0.05)")
    while True:  # interrupt once the code is running
        msg = client.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            break
    time.sleep(0.2)
    manager.interrupt_kernel()
    reply, _ = collect(client, msg_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert stdout_of(run(client, "print('alive')")[1]) == "alive\n"


def test_restart(pair):
    name, manager, client = pair
    run(client, "before_restart = 1")
    manager.restart_kernel(now=True)
    client.wait_for_ready(timeout=60)
    while True:  # drop what the old kernel left on the channels
        try:
            client.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            break
    reply, outputs = run(
        client,
        "print('before_restart' in globals(), type(get_ipython().kernel.session).__module__)",
    )
    assert reply["content"]["status"] == "ok"
    expected = (
        "kernelwire.session" if name.startswith("kernelwire-kernel") else "jupyter_client.session"
    )
    assert stdout_of(outputs) == f"False {expected}\n"
