"""Helpers shared by the zmq I/O tests: implementations, sockets, sessions."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from types import ModuleType

import pytest
import zmq

from kernelwire import _pyzmqio
from kernelwire.session import Session


def _io_modules() -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    try:
        from kernelwire import _zmqio
    except ImportError:
        pass
    else:
        modules["cython"] = _zmqio
    modules["pure"] = _pyzmqio
    return modules


ZMQIO = _io_modules()
TRANSPORTS = ["inproc", "ipc", "tcp"]
KEY = b"zmqio-test-key"


def session_class(zmqio: ModuleType) -> type[Session]:
    """kernelwire.Session sending and receiving through ``zmqio`` (core as selected)."""
    return Session.pinned(io=zmqio.IMPLEMENTATION)


def socket_pair(ctx: zmq.Context, transport: str, tmp_path, kinds=(zmq.PUSH, zmq.PULL)):
    """(sender, receiver) connected over ``transport``."""
    sender = ctx.socket(kinds[0])
    receiver = ctx.socket(kinds[1])
    sender.linger = 0
    receiver.linger = 0
    if transport == "tcp":
        port = receiver.bind_to_random_port("tcp://127.0.0.1")
        sender.connect(f"tcp://127.0.0.1:{port}")
    else:
        address = (
            f"inproc://zmqio-{uuid.uuid4().hex}"
            if transport == "inproc"
            else f"ipc://{tmp_path}/{uuid.uuid4().hex[:8]}.sock"
        )
        receiver.bind(address)
        sender.connect(address)
    return sender, receiver


def signal_main_after(delay: float, signum: int = signal.SIGINT) -> threading.Thread:
    """Send ``signum`` to the main thread after ``delay`` seconds (from a daemon thread)."""
    main = threading.main_thread().ident

    def fire():
        time.sleep(delay)
        signal.pthread_kill(main, signum)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


needs_pthread_kill = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill"), reason="signals to a thread need pthread_kill"
)
