"""Hosts as Linux network namespaces, and an IPython Parallel cluster across them.

Each host is a network namespace with its own ``eth0`` (a veth pair) plugged
into a bridge that lives in one more namespace, the switch; nothing touches
the caller's own network stack, and every address is in a private range
(``10.213.0.0/24`` by default).  Processes run on a host through
``ip netns exec``; a client runs there as an :class:`Agent`, a small Python
process that executes the code it is sent and answers with JSON.

Needs root and iproute2 (``ip netns``); :func:`unavailable` says why not.
Used by the multi-host tests and by ``python -m kernelwire.bench
--ipyparallel --netns``.  Every namespace this module makes is named
``kwnet<pid>x<n>-<host>``, so leftovers of a crashed run are found and
removed by :func:`remove_leftovers`.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

PREFIX = "kwnet"
_NAME = re.compile(rf"^{PREFIX}(\d+)x(\d+)-")
_counter = 0
REPLY_MARK = "@kwagent "


def _ip(*args: str, check: bool = True, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def unavailable() -> str | None:
    """Why network-namespace hosts cannot be made here, or None if they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = f"{PREFIX}{os.getpid()}x0-probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _namespaces() -> list[str]:
    listed = _ip("netns", "list", check=False).stdout.splitlines()
    return [line.split()[0] for line in listed if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ns_pids(namespace: str) -> list[int]:
    out = _ip("netns", "pids", namespace, check=False).stdout
    return [int(p) for p in out.split()]


def _kill_namespace(namespace: str, grace: float = 3.0) -> None:
    """Stop every process in ``namespace`` (TERM, then KILL), then delete it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _ns_pids(namespace)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = _ns_pids(namespace)
        if not pids:
            break
    _ip("netns", "del", namespace, check=False)


def remove_leftovers() -> list[str]:
    """Delete namespaces of this module whose creating process is gone."""
    removed = []
    for namespace in _namespaces():
        match = _NAME.match(namespace)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            _kill_namespace(namespace, grace=1.0)
            removed.append(namespace)
    return removed


class Network:
    """Hosts (network namespaces) on one bridge; ``close()`` removes them all."""

    def __init__(self, hosts: list[str], subnet: str = "10.213.0") -> None:
        global _counter
        _counter += 1
        self.tag = f"{PREFIX}{os.getpid()}x{_counter}"
        self.switch = f"{self.tag}-sw"
        self.hosts = list(hosts)
        self.addresses = {h: f"{subnet}.{i + 1}" for i, h in enumerate(self.hosts)}
        self._processes: list[tuple[subprocess.Popen, IO | None]] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def _build(self) -> None:
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts:
            ns, port = self.ns(host), f"p-{host}"
            _ip("netns", "add", ns)
            # both ends are made inside the switch, then one moves to the host
            _ip("-n", self.switch, "link", "add", port, "type", "veth",
                "peer", "name", "eth0", "netns", ns)  # fmt: skip
            _ip("-n", self.switch, "link", "set", port, "master", "br0")
            _ip("-n", self.switch, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{self.addresses[host]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def link(self, host: str, up: bool) -> None:
        """Pull (or plug back) the host's cable at the switch: its own eth0 stays up."""
        _ip("-n", self.switch, "link", "set", f"p-{host}", "up" if up else "down")

    def popen(
        self,
        host: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        log: Path | None = None,
        **kwargs: Any,
    ) -> subprocess.Popen:
        """Start ``argv`` on ``host``; its output goes to ``log`` (appended)."""
        out = open(log, "ab") if log is not None else None  # closed in close()
        kwargs.setdefault("stdout", out if out is not None else subprocess.DEVNULL)
        kwargs.setdefault("stderr", out if out is not None else subprocess.DEVNULL)
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(host), *argv],
            env={**os.environ, **(env or {})},
            **kwargs,
        )
        self._processes.append((process, out))
        return process

    def pids(self, host: str) -> list[int]:
        """Every process now running on ``host``."""
        return _ns_pids(self.ns(host))

    def close(self) -> None:
        """Stop every process on every host, then delete all the namespaces."""
        for namespace in [self.ns(h) for h in self.hosts] + [self.switch]:
            if namespace in _namespaces():
                _kill_namespace(namespace)
        for process, out in self._processes:
            if process.poll() is None:
                process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (process.stdin, process.stdout, out):
                if stream is not None:
                    stream.close()
        self._processes.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def venv_script(name: str) -> list[str]:
    """The console script ``name`` of this interpreter's environment."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    module = {"ipcontroller": "ipyparallel.controller", "ipengine": "ipyparallel.engine"}[name]
    return [sys.executable, "-m", module]


class AgentError(RuntimeError):
    """Code sent to an :class:`Agent` raised; ``etype`` is the exception's class name."""

    def __init__(self, etype: str, message: str, text: str) -> None:
        super().__init__(f"{etype}: {message}\n{text}")
        self.etype = etype


class Agent:
    """A Python process on a host that runs the code it is sent.

    ``call(code)`` executes ``code`` in the agent's persistent globals and
    returns what it left in ``result`` (JSON-able; other values come back as
    their ``repr``).
    """

    def __init__(
        self, net: Network, host: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        self.host = host
        self.process = net.popen(
            host,
            [sys.executable, "-m", "kernelwire.bench.netns_hosts", "agent"],
            env=env,
            log=log,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace")
            if line.startswith(REPLY_MARK):
                self._replies.put(line[len(REPLY_MARK) :])
        self._replies.put(None)

    def call(self, code: str, timeout: float = 60) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"code": code}).encode() + b"\n")
        self.process.stdin.flush()
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"agent on {self.host} gave no answer in {timeout} s") from None
        if line is None:
            raise RuntimeError(f"agent on {self.host} exited ({self.process.poll()})")
        reply = json.loads(line)
        if not reply["ok"]:
            raise AgentError(reply["etype"], reply["error"], reply["traceback"])
        return reply["value"]

    def close(self, timeout: float = 10) -> None:
        if self.process.poll() is None and self.process.stdin is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()


def _agent_main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever else is printed goes to the log, not into the replies
    sys.stdout = sys.stderr
    namespace: dict[str, Any] = {"__name__": "__agent__"}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            exec(request["code"], namespace)
            reply = {"ok": True, "value": namespace.pop("result", None)}
        except BaseException as exc:  # noqa: B036 - everything goes back to the caller
            reply = {
                "ok": False,
                "etype": type(exc).__name__,
                "error": str(exc),
                "traceback": traceback.format_exc(),
            }
        replies.write(REPLY_MARK + json.dumps(reply, default=repr) + "\n")


class HostCluster:
    """``ipcontroller`` on one host, ``ipengine`` on others, clients as agents.

    ``kernelwire`` picks what each process runs (``KERNELWIRE_INSTALL``);
    connection files are copied into each host's own directory, as a user
    copies them to other machines.
    """

    def __init__(
        self,
        net: Network,
        workdir: Path,
        controller_host: str = "a",
        kernelwire: bool = True,
        ping_ms: int = 500,
        misses: int = 3,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.net = net
        self.workdir = Path(workdir)
        self.controller_host = controller_host
        self.kernelwire = kernelwire
        self.ping_ms = ping_ms
        self.misses = misses
        self.extra_env = dict(extra_env or {})
        self.profile = self.workdir / controller_host / "profile"
        self.install_log = self.workdir / "install.log"
        self.controller: subprocess.Popen | None = None
        self.engines: dict[str, list[subprocess.Popen]] = {}
        self.agents: list[Agent] = []

    def env(self, host: str, kernelwire: bool | None = None) -> dict[str, str]:
        use = self.kernelwire if kernelwire is None else kernelwire
        return {
            "KERNELWIRE_INSTALL": "1" if use else "0",
            "KERNELWIRE_INSTALL_LOG": str(self.install_log),
            "IPYTHONDIR": str(self.workdir / host / "ipython"),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    @property
    def security(self) -> Path:
        return self.profile / "security"

    def start_controller(self, *extra: str, kernelwire: bool | None = None) -> subprocess.Popen:
        address = self.net.addresses[self.controller_host]
        argv = venv_script("ipcontroller") + [
            f"--ip={address}",
            f"--location={address}",
            f"--profile-dir={self.profile}",
            f"--ping={self.ping_ms}",
            f"--HeartMonitor.max_heartmonitor_misses={self.misses}",
            "--log-level=INFO",
            *extra,
        ]
        self.controller = self.net.popen(
            self.controller_host,
            argv,
            env=self.env(self.controller_host, kernelwire),
            log=self.log("controller"),
        )
        return self.controller

    def wait_for_files(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        files = [self.security / f"ipcontroller-{w}.json" for w in ("engine", "client")]
        while not all(f.exists() and f.stat().st_size for f in files):
            if self.controller is not None and self.controller.poll() is not None:
                raise RuntimeError(f"ipcontroller exited: see {self.log('controller')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no connection files after {timeout} s")
            time.sleep(0.1)
        time.sleep(0.2)  # written whole: json.dump then close

    def connection_file(self, host: str, which: str, key: bytes | None = None) -> Path:
        """The controller's ``which`` (engine/client) file copied to ``host``.

        ``key`` replaces the key in the copy (an intruder's wrong one).
        """
        info = json.loads((self.security / f"ipcontroller-{which}.json").read_text())
        if key is not None:
            info["key"] = key.decode()
        target = self.workdir / host / f"ipcontroller-{which}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(info))
        return target

    def start_engine(
        self, host: str, kernelwire: bool | None = None, key: bytes | None = None, *extra: str
    ) -> subprocess.Popen:
        url_file = self.connection_file(host, "engine", key)
        name = f"engine-{host}-{len(self.engines.get(host, []))}"
        (self.workdir / host / "profile").mkdir(parents=True, exist_ok=True)
        argv = venv_script("ipengine") + [
            f"--file={url_file}",
            f"--profile-dir={self.workdir / host / 'profile'}",
            "--IPEngine.timeout=30",
            "--log-level=INFO",
            *extra,
        ]
        process = self.net.popen(host, argv, env=self.env(host, kernelwire), log=self.log(name))
        self.engines.setdefault(host, []).append(process)
        return process

    def agent(self, host: str, kernelwire: bool | None = None, connect: bool = True) -> Agent:
        """An agent on ``host``; with ``connect``, its ``client`` is an ``ipyparallel.Client``."""
        agent = Agent(self.net, host, env=self.env(host, kernelwire), log=self.log(f"agent-{host}"))
        self.agents.append(agent)
        if connect:
            url_file = self.connection_file(host, "client")
            agent.call(
                "import ipyparallel as ipp\n"
                f"client = ipp.Client({str(url_file)!r}, timeout=30)\n"
                "result = type(client.session).__module__\n"
            )
        return agent

    def wait_for_engines(self, agent: Agent, n: int, timeout: float = 90) -> list[int]:
        return agent.call(
            f"client.wait_for_engines({n}, timeout={timeout})\nresult = sorted(client.ids)",
            timeout=timeout + 10,
        )

    def stop(self) -> None:
        for agent in self.agents:
            try:
                agent.call("if 'client' in globals(): client.close()", timeout=10)
            except Exception:  # best effort: the agent may be gone
                pass
            agent.close()
        self.agents.clear()


# Run by the bench's client agent: the workloads of kernelwire.bench.ipp_driver.
_BENCH_SETUP = """
import time
from kernelwire.bench import ipp_driver
for name, func in ipp_driver.WORKLOADS.items():  # imports, connections, caches: not timed
    func(client, 50 if name == "tiny-tasks" else ipp_driver.WARM_UP_BYTES)
result = ipp_driver.describe(client)
"""
_BENCH_RUN = """
func = ipp_driver.WORKLOADS[{workload!r}]
start = time.perf_counter()
count = sum(func(client, {size}) for _ in range({repeat}))
result = {{"count": count, "seconds": time.perf_counter() - start}}
"""


class HostsDriver:
    """The bench's ipyparallel driver with every part on its own host.

    Controller on A, an engine on each of B and C, the client on D, each a
    network namespace; stock everywhere for ``jupyter_client``, kernelwire
    everywhere for ``kernelwire``.  It answers like ``ipp_driver``: first
    ``{"ready": ...}``, then one reply per :meth:`send` with the operations,
    the wall time measured on D and the CPU time of each process's role.
    """

    def __init__(
        self, contender: str, timeout: float = 180, controller_args: list[str] | None = None
    ) -> None:
        reason = unavailable()
        if reason:
            raise RuntimeError(f"network namespaces unavailable: {reason}")
        self._replies: list[dict[str, Any]] = []
        self._workdir = tempfile.TemporaryDirectory(prefix="kernelwire-bench-netns-")
        workdir = Path(self._workdir.name)
        self.net = Network(["a", "b", "c", "d"])
        try:
            on = contender == "kernelwire"
            self.cluster = HostCluster(self.net, workdir, kernelwire=on, ping_ms=3000, misses=10)
            self.cluster.start_controller(*(controller_args or []))
            self.cluster.wait_for_files(timeout)
            for host in ("b", "c"):
                self.cluster.start_engine(host)
            self.client = self.cluster.agent("d")
            self.cluster.wait_for_engines(self.client, 2, timeout)
            info = self.client.call(_BENCH_SETUP, timeout=timeout)
            info["hosts"] = "controller, 2 engine hosts, client: network namespaces"
            self._replies.append({"ready": info})
        except BaseException:
            self.close()
            raise

    def cpu_times(self) -> dict[str, float]:
        """CPU seconds so far of each role: client, hub, schedulers, engines, nannies."""
        import psutil

        totals: dict[str, float] = {}
        controller = self.cluster.controller.pid if self.cluster.controller else -1
        for host in ("a", "b", "c", "d"):
            for pid in self.net.pids(host):
                try:
                    proc = psutil.Process(pid)
                    with proc.oneshot():
                        times = proc.cpu_times()
                        nanny = "nanny" in " ".join(proc.cmdline())
                except psutil.Error:
                    continue  # exited meanwhile
                if host == "a":
                    role = "hub" if pid == controller else "schedulers"
                elif host == "d":
                    role = "client"
                else:
                    role = "nannies" if nanny else "engines"
                totals[role] = totals.get(role, 0.0) + times.user + times.system
        return totals

    def send(self, request: dict[str, Any]) -> None:
        try:
            before = self.cpu_times()
            code = _BENCH_RUN.format(
                workload=request["workload"],
                size=int(request["size"]),
                repeat=int(request.get("repeat", 1)),
            )
            reply = self.client.call(code, timeout=900)
            after = self.cpu_times()
            reply["cpu"] = {k: after[k] - before.get(k, 0.0) for k in after}
        except Exception as e:  # a failed sample, as ipp_driver reports it
            reply = {"error": f"{type(e).__name__}: {e}"}
        self._replies.append(reply)

    def read(self, timeout: float | None = None) -> dict[str, Any]:
        reply = self._replies.pop(0)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def close(self) -> None:
        cluster = getattr(self, "cluster", None)
        if cluster is not None:
            cluster.stop()
        self.net.close()
        self._workdir.cleanup()


if __name__ == "__main__":
    if sys.argv[1:] == ["agent"]:
        _agent_main()
    else:
        sys.exit("usage: python -m kernelwire.bench.netns_hosts agent")
