"""Helpers shared by the zmq I/O tests: implementations, sockets, sessions."""

from __future__ import annotations

import uuid
from types import ModuleType

import zmq

from kernelwire import _pyzmqio
from kernelwire.session import Session


def _zmqio_modules() -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    try:
        from kernelwire import _zmqio
    except ImportError:
        pass
    else:
        modules["cython"] = _zmqio
    modules["pure"] = _pyzmqio
    return modules


ZMQIO = _zmqio_modules()
TRANSPORTS = ["inproc", "ipc", "tcp"]
KEY = b"zmqio-test-key"


def session_class(zmqio: ModuleType) -> type[Session]:
    """kernelwire.Session sending and receiving through ``zmqio``."""

    class PinnedSession(Session):
        _zmqio_module = zmqio

    return PinnedSession


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
