"""The runner's side of the two-process measurements.

:class:`LineProcess` talks JSON lines with a child (a Python worker or the C
floor) and never waits forever; :class:`Peers` owns the two long-lived
Python workers and the floor, and :meth:`Peers.pair` runs one binding role
against one connecting role and returns what each side timed.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import typing as t

from .floor import Floor
from .payloads import PAYLOADS, frame_sizes

#: how long a role may take before the run gives up on it (seconds)
ROLE_TIMEOUT = 180.0

#: what the floor sends for each role: the request frames, or the reply's
_FLOOR_FRAMES = {"push": False, "ping": False, "echo": True}


class PeerError(RuntimeError):
    """A worker or floor process failed, answered an error, or timed out."""


class LineProcess:
    """A child process that reads/writes one JSON object per line."""

    def __init__(self, argv: list[str], stdin: bool = False) -> None:
        env = dict(os.environ)
        env.pop("KERNELWIRE_INSTALL", None)  # jupyter_client must stay jupyter_client
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)  # end of output: the process is gone

    def send(self, obj: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def read(self, timeout: float = ROLE_TIMEOUT) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise PeerError(f"{self.proc.args[0]} did not answer within {timeout:.0f} s") from None
        if line is None:
            raise PeerError(f"{self.proc.args[0]} exited with status {self.proc.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise PeerError(reply["error"])
        return reply

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._pump_thread.join(timeout=10)  # it reads stdout up to EOF: then close it
        if self.proc.stdout:
            self.proc.stdout.close()


class Peers:
    """Two Python workers and the C floor, ready to run pairs of roles."""

    def __init__(self, floor: Floor | None) -> None:
        self.floor = floor
        self.workers = self._start_workers()
        self._ipc_dir = tempfile.mkdtemp(prefix="kwbench-")
        self._serial = 0

    @staticmethod
    def _start_workers() -> tuple[LineProcess, LineProcess]:
        argv = [sys.executable, "-m", "kernelwire.bench.worker"]
        return LineProcess(argv, stdin=True), LineProcess(argv, stdin=True)

    def _restart_workers(self) -> None:
        for worker in self.workers:
            worker.proc.kill()
            worker.close()
        self.workers = self._start_workers()

    def hello(self) -> dict[str, dict]:
        """What the workers run: ``{"unavailable": {contender: reason},
        "implementations": {contender: {"core": ..., "io": ...}}}``."""
        self.workers[0].send({"role": "hello"})
        return self.workers[0].read(timeout=60)

    def endpoint(self, transport: str) -> str:
        self._serial += 1
        if transport == "tcp":
            return "tcp://127.0.0.1:*"  # the binder picks a free port and reports it
        if transport == "ipc":
            return f"ipc://{self._ipc_dir}/{self._serial}.ipc"
        raise ValueError(f"unknown transport {transport!r}")

    def pair(
        self,
        contender: str,
        roles: tuple[str, str],
        payload: str,
        count: int,
        transport: str,
    ) -> dict[str, float]:
        """Run ``roles`` = (binding role, connecting role); returns {role: seconds}."""
        bind_role, connect_role = roles
        endpoint = self.endpoint(transport)
        if contender == "floor":
            return self._floor_pair(roles, payload, count, endpoint)
        binder, connector = self.workers
        command = {"contender": contender, "payload": payload, "count": count}
        try:
            binder.send({**command, "role": bind_role, "endpoint": endpoint})
            bound = binder.read()["endpoint"]
            connector.send({**command, "role": connect_role, "endpoint": bound})
            connected = connector.read()["seconds"]
            return {bind_role: binder.read()["seconds"], connect_role: connected}
        except PeerError:
            self._restart_workers()  # one side may still be waiting: start clean
            raise

    def _floor_pair(
        self, roles: tuple[str, str], payload: str, count: int, endpoint: str
    ) -> dict[str, float]:
        if self.floor is None:
            raise PeerError("the C floor is not available")
        floor = self.floor

        def command(role: str, where: str) -> list[str]:
            sizes = []
            if role in _FLOOR_FRAMES:
                sizes = frame_sizes(PAYLOADS[payload], reply=_FLOOR_FRAMES[role])
            return floor.command(role, where, count, sizes)

        binder = LineProcess(command(roles[0], endpoint))
        try:
            bound = binder.read()["endpoint"]
            connector = LineProcess(command(roles[1], bound))
            try:
                connected = connector.read()["seconds"]
            finally:
                connector.close()
            return {roles[0]: binder.read()["seconds"], roles[1]: connected}
        finally:
            binder.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        try:
            for name in os.listdir(self._ipc_dir):
                os.unlink(os.path.join(self._ipc_dir, name))
            os.rmdir(self._ipc_dir)
        except OSError:
            pass

    def __enter__(self) -> Peers:
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.close()
