"""Types of the compiled ``kernelwire._zmqio`` (built from _ext/_zmqio.pyx).

Its pure twin, ``kernelwire._pyzmqio``, has the same functions and constants;
ReceivedFrame, TrackState, ZeroCopyTracker, stats and C_API are compiled-only.
tests/test_stubs.py checks this file against both modules.
"""

import builtins
import sys
from typing import Any, final

import zmq
from typing_extensions import CapsuleType

IMPLEMENTATION: str
unavailable_reason: str | None
raw_path_available: bool
#: the C entry points for other compiled modules (see _ext/_zmqio.pxd)
C_API: CapsuleType

def supports(socket: Any) -> bool: ...
def stats() -> tuple[int, int]: ...

@final
class TrackState:
    def done(self) -> bool: ...

class ZeroCopyTracker(zmq.MessageTracker):
    def __init__(self, state: TrackState) -> None: ...
    @property
    def done(self) -> bool: ...
    def wait(self, timeout: float = -1.0) -> None: ...

def send_frames(
    socket: Any, frames: list, copy_threshold: int, track: bool, flags: int = 0
) -> zmq.MessageTracker: ...

@final
class ReceivedFrame:
    def __len__(self) -> int: ...
    if sys.version_info >= (3, 12):
        def __buffer__(self, flags: int, /) -> memoryview: ...
    @property
    def bytes(self) -> builtins.bytes: ...
    @property
    def buffer(self) -> memoryview: ...
    @property
    def more(self) -> bool: ...

def recv_frames(socket: Any, flags: int = 0, copy: bool = True) -> list: ...
