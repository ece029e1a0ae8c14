"""The built-in end-to-end scenarios: two processes, over tcp and ipc.

throughput: PUSH -> PULL, the receiver times ``count`` messages (each one
fully received: verified and unpacked, for a Session).
latency: DEALER -> ROUTER -> DEALER round trips, an execute_request answered
by an execute_reply, timed by the requester.
"""

from __future__ import annotations

import argparse
import typing as t

from .base import Bench, Case, Measurement, Scenario
from .payloads import PAYLOADS, frame_sizes

if t.TYPE_CHECKING:
    from .contenders import Contender


def _frames_bytes(payload: str) -> int:
    return sum(frame_sizes(PAYLOADS[payload]))


class Throughput(Scenario):
    name = "throughput"
    title = "PUSH -> PULL throughput"

    def cases(self, options: argparse.Namespace) -> list[Case]:
        return [
            Case(
                f"{transport}/{size}",
                f"{transport} {size}",
                unit="msg/s" if not PAYLOADS[size].buffer_bytes else "MB/s",
                params={"transport": transport, "payload": size},
            )
            for transport in options.transports
            for size in options.sizes
        ]

    def measure(self, bench: Bench, case: Case, contender: Contender) -> Measurement:
        payload = case.params["payload"]
        count = bench.count(PAYLOADS[payload])
        seconds = bench.peers.pair(
            contender.name, ("pull", "push"), payload, count, case.params["transport"]
        )
        return Measurement(
            count,
            seconds["pull"],
            bytes_per_op=_frames_bytes(payload),
            extra={"sender_seconds": seconds["push"]},
        )


class Latency(Scenario):
    name = "latency"
    title = "DEALER <-> ROUTER round trip"

    def cases(self, options: argparse.Namespace) -> list[Case]:
        return [
            Case(
                f"{transport}/small",
                f"{transport} small",
                unit="µs",
                params={"transport": transport},
            )
            for transport in options.transports
        ]

    def measure(self, bench: Bench, case: Case, contender: Contender) -> Measurement:
        count = bench.scaled(bench.options.round_trips)
        seconds = bench.peers.pair(
            contender.name, ("echo", "ping"), "small", count, case.params["transport"]
        )
        return Measurement(count, seconds["ping"], extra={"server_seconds": seconds["echo"]})
