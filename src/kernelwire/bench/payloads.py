"""The messages the end-to-end benchmarks move.

Every contender sends the same message (same type, content and buffers);
the raw-pyzmq and C contenders move the frames jupyter_client would build
for it.  Counts are messages per sample, scaled by ``--scale``.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from functools import cache

#: the key every benchmark Session signs with (HMAC-SHA256, the default scheme)
KEY = b"kernelwire-benchmark-key"

EXECUTE_REQUEST = {
    "code": "import numpy as np\nresult = np.arange(10).sum()\nprint(result)",
    "silent": False,
    "store_history": True,
    "user_expressions": {},
    "allow_stdin": False,
    "stop_on_error": True,
}
EXECUTE_REPLY = {
    "status": "ok",
    "execution_count": 1,
    "user_expressions": {},
    "payload": [],
}
COMM_MSG = {"comm_id": "6e1a8f43c2b94b9e9f1de8b3a5d0c7f2", "data": {"method": "update"}}


@dataclass(frozen=True)
class Payload:
    """One message shape: a small request, or a message carrying one buffer."""

    name: str
    buffer_bytes: int  # 0: no buffer
    count: int  # messages per sample in the default run
    quick_count: int  # messages per sample with --quick
    numpy: bool = False  # the buffer is a numpy array rather than bytes

    @property
    def msg_type(self) -> str:
        return "comm_msg" if self.buffer_bytes else "execute_request"

    @property
    def content(self) -> dict:
        return COMM_MSG if self.buffer_bytes else EXECUTE_REQUEST

    @property
    def recv_copy(self) -> bool:
        """Receive with copy=True for small messages, zero-copy for buffers (as kernels do)."""
        return not self.buffer_bytes

    def buffers(self) -> list:
        return list(_buffers(self.name))


PAYLOADS: dict[str, Payload] = {
    p.name: p
    for p in (
        Payload("small", 0, count=20_000, quick_count=2_000),
        Payload("64KB", 64 * 1024, count=4_000, quick_count=400),
        Payload("1MB", 1024 * 1024, count=400, quick_count=50),
        Payload("64MB", 64 * 1024 * 1024, count=12, quick_count=3, numpy=True),
    )
}


@cache
def _buffers(name: str) -> tuple:
    payload = PAYLOADS[name]
    if not payload.buffer_bytes:
        return ()
    if payload.numpy:
        import numpy as np

        return (np.ones(payload.buffer_bytes // 8, dtype=np.float64),)
    return (b"\x01" * payload.buffer_bytes,)


def reference_frames(payload: Payload, reply: bool = False) -> list[t.Any]:
    """The frames jupyter_client sends for this payload (or for its reply), buffers included."""
    from jupyter_client.session import Session

    session = Session(key=KEY, packer="orjson")
    request = session.msg(payload.msg_type, payload.content)
    if reply:
        reply_msg = session.msg("execute_reply", EXECUTE_REPLY, parent=request)
        return session.serialize(reply_msg)
    return session.serialize(request) + payload.buffers()


def frame_sizes(payload: Payload, reply: bool = False) -> list[int]:
    return [memoryview(f).nbytes for f in reference_frames(payload, reply)]
