"""The benchmark worker: a long-lived Python process that plays one side of a pair.

The runner starts two (``python -m kernelwire.bench.worker``) and drives
them with one JSON object per line on stdin; the worker answers with JSON
lines on stdout, mirroring the C floor's protocol: ``{"endpoint": ...}``
once a binding role is bound, then ``{"seconds": ...}`` or ``{"error": ...}``.
A command is ``{"role", "contender", "payload", "endpoint", "count"}``;
``{"role": "hello"}`` reports which contenders can run, and the core and
I/O modules each kernelwire contender runs.

Roles (as in floor.c): pull and echo bind, push and ping connect; the first
message is a warm-up and timing starts once it has gone through.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import typing as t

from .contenders import availability, make_wire
from .payloads import PAYLOADS

#: a peer that died must not hang the run: give up after this long
TIMEOUT_MS = 20_000


def _timed(step: t.Callable[[], t.Any], count: int) -> float:
    step()  # warm-up: connection set up, first-call costs paid
    start = time.perf_counter()
    for _ in range(count):
        step()
    return time.perf_counter() - start


def pull(wire: t.Any, sock: t.Any, count: int) -> float:
    return _timed(lambda: wire.recv(sock), count)


def push(wire: t.Any, sock: t.Any, count: int) -> float:
    return _timed(lambda: wire.send(sock), count)


def echo(wire: t.Any, sock: t.Any, count: int) -> float:
    return _timed(lambda: wire.serve(sock), count)


def ping(wire: t.Any, sock: t.Any, count: int) -> float:
    return _timed(lambda: wire.request(sock), count)


#: role -> (socket type, whether it binds, ``fn(wire, sock, count) -> seconds``)
ROLES: dict[str, tuple[str, bool, t.Callable[[t.Any, t.Any, int], float]]] = {
    "pull": ("PULL", True, pull),
    "push": ("PUSH", False, push),
    "echo": ("ROUTER", True, echo),
    "ping": ("DEALER", False, ping),
}


def emit(reply: dict) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


#: the last role's socket, closed when the next command arrives: by then the
#: peer has received everything, so closing can never drop a queued message
_open_socket: list = []


def close_previous_socket() -> None:
    while _open_socket:
        _open_socket.pop().close()


def run_role(ctx: t.Any, command: dict) -> dict:
    import zmq

    socket_type, binds, fn = ROLES[command["role"]]
    wire = make_wire(command["contender"], PAYLOADS[command["payload"]])
    sock = ctx.socket(getattr(zmq, socket_type))
    _open_socket.append(sock)
    sock.rcvtimeo = sock.sndtimeo = TIMEOUT_MS
    if binds:
        sock.bind(command["endpoint"])
        emit({"endpoint": sock.last_endpoint.decode()})
    else:
        sock.connect(command["endpoint"])
    return {"seconds": fn(wire, sock, int(command["count"]))}


def hello() -> dict:
    unavailable, implementations = availability()
    return {"unavailable": unavailable, "implementations": implementations}


def keep_jupyter_client_dates() -> None:
    """Undo ipyparallel's import-time patch, should anything have imported it here.

    ipyparallel turns jupyter_client's date parsing into a no-op; the
    end-to-end comparisons measure Sessions as kernels run them, with dates.
    """
    from jupyter_client import jsonutil
    from jupyter_client import session as jc_session

    jc_session.extract_dates = jsonutil.extract_dates


def main() -> None:
    import zmq

    keep_jupyter_client_dates()
    ctx = zmq.Context()
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        close_previous_socket()
        try:
            reply = hello() if command["role"] == "hello" else run_role(ctx, command)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        emit(reply)


if __name__ == "__main__":
    main()
