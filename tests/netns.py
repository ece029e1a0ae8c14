"""Helpers of tests/test_multihost.py that run on the hosts themselves.

The engines import this module (it is on their PYTHONPATH) for the work
they run, so functions travel by reference and no cloudpickle is needed;
the intruder's agent imports it for its tools.  Every loop here is bounded
in count and time.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

import zmq

DELIM = b"<IDS|MSG>"


# --- work for the engines --------------------------------------------------


def slow_square(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x * x


def gated_square(x: int, gate: str, timeout: float, started: str | None = None) -> int:
    """Square ``x`` once the file ``gate`` exists: a task that ends when the test says.

    ``started``, a file created as the task begins, tells the test it is running.
    """
    if started is not None:
        Path(started).touch()
    if not wait_for(lambda: os.path.exists(gate), timeout, interval=0.05):
        raise TimeoutError(f"gate {gate} never opened")
    return x * x


def mark(path: str, label: str) -> str:
    """Append ``label`` to ``path``: a side effect the tests can count."""
    with open(path, "a") as f:
        f.write(label + "\n")
    return label


def marks(path: str | Path) -> list[str]:
    path = Path(path)
    return path.read_text().splitlines() if path.exists() else []


# --- connection files --------------------------------------------------------


def controller_ports(*connection_files: str | Path) -> dict[str, int]:
    """Every port the controller listens on, named ``file:channel``."""
    ports: dict[str, int] = {}
    for path in connection_files:
        info = json.loads(Path(path).read_text())
        side = "engine" if "hb_ping" in info else "client"
        for name, value in info.items():
            values = value if isinstance(value, list) else [value]
            for i, port in enumerate(values):
                if isinstance(port, int) and not isinstance(port, bool):
                    label = f"{side}:{name}" + (f"[{i}]" if isinstance(value, list) else "")
                    ports[label] = port
    return ports


# --- the intruder's tools ----------------------------------------------------


def _garbage(rng: random.Random) -> list[bytes]:
    return [rng.randbytes(rng.randrange(0, 2048)) for _ in range(rng.randrange(1, 6))]


def _forged(rng: random.Random) -> list[bytes]:
    """Well-formed Jupyter frames with a made-up signature."""
    header = {
        "msg_id": rng.randbytes(8).hex(),
        "msg_type": rng.choice(["execute_request", "apply_request", "registration_request"]),
        "session": "intruder",
        "username": "intruder",
        "date": "2024-01-01T00:00:00Z",
        "version": "5.3",
    }
    content = {"code": "open('/nonexistent/x', 'w')", "id": 0, "uuid": "x"}
    body = [json.dumps(header).encode(), b"{}", b"{}", json.dumps(content).encode()]
    return [DELIM, rng.randbytes(32).hex().encode(), *body]


def _truncated(rng: random.Random) -> list[bytes]:
    frames = _forged(rng)
    frames = frames[: rng.randrange(2, len(frames))]  # keeps the delimiter whole
    frames[-1] = frames[-1][: rng.randrange(0, len(frames[-1]) + 1)]
    return frames


def _oversized(rng: random.Random, big: bytes) -> list[bytes]:
    if rng.random() < 0.5:
        return [DELIM, b"0" * 64, big]  # one 8 MB frame
    return [DELIM, b"0" * 64] + [b"{}"] * 2000  # 2,000 frames


def flood(
    address: str,
    ports: dict[str, int],
    seconds: float,
    max_bytes: int = 400_000_000,
    rate: float = 100.0,
    seed: int = 13,
    delimited: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Send garbage, forged, truncated and oversized messages to every port.

    Each port gets a DEALER (for ROUTERs), a PUB (for SUBs) and an XSUB (whose
    "subscriptions" reach PUBs), plus raw TCP connections that send bytes
    which are not ZMTP at all.  Bounded by ``seconds``, by ``rate`` rounds
    per second and by ``max_bytes`` in total.  Messages to the ``delimited``
    ports always start with the Jupyter delimiter (the IOPub relay passes
    them verbatim to every client).
    """
    rng = random.Random(seed)
    big = rng.randbytes(8_000_000)
    ctx = zmq.Context()
    sockets = []
    for port in ports.values():
        for kind in (zmq.DEALER, zmq.PUB, zmq.XSUB):
            s = ctx.socket(kind)
            s.linger = 0
            s.sndhwm = 50
            s.connect(f"tcp://{address}:{port}")
            sockets.append((s, port in delimited))
    sent = {"garbage": 0, "forged": 0, "truncated": 0, "oversized": 0, "raw_tcp": 0, "dropped": 0}
    total = 0
    deadline = time.monotonic() + seconds
    rounds = 0
    try:
        while time.monotonic() < deadline and total < max_bytes and rounds < seconds * rate:
            rounds += 1
            for n, (s, delimit) in enumerate(sockets):
                kind = rng.choice(["garbage", "forged", "truncated"])
                if rounds % 25 == 0 and n == rounds % len(sockets):
                    kind = "oversized"
                frames = {
                    "garbage": _garbage,
                    "forged": _forged,
                    "truncated": _truncated,
                    "oversized": lambda r: _oversized(r, big),
                }[kind](rng)
                if delimit and frames[0] != DELIM:
                    frames.insert(0, DELIM)
                try:
                    s.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    sent["dropped"] += 1
                    continue
                sent[kind] += 1
                total += sum(len(f) for f in frames)
            if rounds % 10 == 0:
                for port in ports.values():
                    total += _raw_tcp(address, port, rng)
                    sent["raw_tcp"] += 1
            time.sleep(1 / rate)
    finally:
        for s, _ in sockets:
            s.close()
        ctx.term()
    sent["bytes"] = total
    sent["rounds"] = rounds
    return sent


def _raw_tcp(address: str, port: int, rng: random.Random) -> int:
    data = rng.choice(
        [
            rng.randbytes(4096),
            b"\xff" + b"\x00" * 8 + b"\x7f" + rng.randbytes(64),
            b"GET / HTTP/1.0\r\n\r\n",
        ]
    )
    try:
        with socket.create_connection((address, port), timeout=1) as conn:
            conn.settimeout(1)
            conn.sendall(data)
    except OSError:
        return 0
    return len(data)


class Background:
    """Run one call in a thread; ``join()`` returns its value or raises its error."""

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self._thread.start()

    def _run(self, fn: Any, args: tuple, kwargs: dict) -> None:
        try:
            self._value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: B036 - handed to join()
            self._error = exc

    def join(self, timeout: float) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("background call still running")
        if self._error is not None:
            raise self._error
        return self._value


def send_frames(address: str, port: int, frames: list[bytes], wait: float = 1.0) -> int:
    """Send ``frames`` from a new DEALER (a new peer); count the replies within ``wait``."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    try:
        s.connect(f"tcp://{address}:{port}")
        s.send_multipart(frames)
        replies = 0
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0 and replies < 100:
            if s.poll(int(left * 1000)):
                s.recv_multipart()
                replies += 1
        return replies
    finally:
        s.close()
        ctx.term()


def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
