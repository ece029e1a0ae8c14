"""An IPython Parallel cluster across hosts, with faults and intruders.

Hosts are Linux network namespaces on one bridge (kernelwire.bench.netns_hosts):
A runs ``ipcontroller --ip=<A>``, B and C run ``ipengine --file=<copied
engine file>``, D runs the client (an agent process), E is the stranger.
Each fault and intruder runs on a stock cluster and on a kernelwire one,
one after the other in the same test: what each lost or let through is
recorded (printed, and appended as JSON lines to the file named by
``KERNELWIRE_MULTIHOST_RECORD`` if set) and kernelwire must do no worse.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernelwire.bench import netns_hosts

sys.path.insert(0, str(Path(__file__).parent))
import netns  # noqa: E402 - the engines' and intruder's helpers, beside this file

REASON = netns_hosts.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"multi-host tests: {REASON}")

HOSTS = ["a", "b", "c", "d", "e"]
TESTS_DIR = str(Path(__file__).parent)
FLAVORS = ("stock", "kernelwire")

# Run by the client agent on D once it is connected.
CLIENT_SETUP = """
import operator, os, time
import ipyparallel as ipp
import netns
dv = client[:]
lb = client.load_balanced_view()
pids = dict(zip(client.ids, dv.apply_sync(os.getpid)))
def outcome(ar, timeout=60):
    try:
        return ["ok", ar.get(timeout=timeout)]
    except ipp.RemoteError as exc:  # an engine's death arrives as a remote EngineError
        return [exc.ename, str(exc)[:160]]
    except Exception as exc:
        return [type(exc).__name__, str(exc)[:200]]
result = pids
"""


@pytest.fixture(scope="module", autouse=True)
def _no_leftovers() -> Iterator[None]:
    netns_hosts.remove_leftovers()  # a crashed earlier run's namespaces
    yield


def record(test: str, observed: dict) -> None:
    line = json.dumps({"test": test, **observed}, default=repr, sort_keys=True)
    print(line)
    target = os.environ.get("KERNELWIRE_MULTIHOST_RECORD")
    if target:
        with open(target, "a") as f:
            f.write(line + "\n")


class Hosts:
    """A running cluster across namespaces, and what the tests need of it."""

    def __init__(self, net: netns_hosts.Network, cluster: netns_hosts.HostCluster) -> None:
        self.net = net
        self.cluster = cluster
        self.client: netns_hosts.Agent | None = None
        self.engine_on: dict[str, int] = {}
        self.pid_of: dict[int, int] = {}

    def connect(self, kernelwire: bool | None = None, engines: int = 2) -> netns_hosts.Agent:
        self.client = self.cluster.agent("d", kernelwire)
        self.cluster.wait_for_engines(self.client, engines)
        pids = {int(k): v for k, v in self.client.call(CLIENT_SETUP).items()}
        self.pid_of = pids
        for host in self.cluster.engines:
            on_host = set(self.net.pids(host))
            for eid, pid in pids.items():
                if pid in on_host:
                    self.engine_on[host] = eid
        return self.client

    def call(self, code: str, timeout: float = 60):
        assert self.client is not None
        return self.client.call(code, timeout)

    def intruder(self) -> netns_hosts.Agent:
        return self.cluster.agent("e", kernelwire=False, connect=False)

    def controller_log(self) -> str:
        return self.cluster.log("controller").read_text(errors="replace")


@contextlib.contextmanager
def hosts(
    workdir: Path,
    kernelwire: bool,
    engines: dict[str, bool | None] | None = None,
    controller: bool | None = None,
    client: bool | None = None,
    controller_args: tuple[str, ...] = (),
) -> Iterator[Hosts]:
    """Controller on A, an engine on each of B and C, the client on D."""
    engines = {"b": None, "c": None} if engines is None else engines
    workdir.mkdir(parents=True, exist_ok=True)
    net = netns_hosts.Network(HOSTS)
    cluster = netns_hosts.HostCluster(
        net, workdir, kernelwire=kernelwire, extra_env={"PYTHONPATH": TESTS_DIR}
    )
    try:
        cluster.start_controller(*controller_args, kernelwire=controller)
        cluster.wait_for_files()
        for host, use in engines.items():
            cluster.start_engine(host, use)
        running = Hosts(net, cluster)
        running.connect(client, len(engines))
        yield running
    finally:
        cluster.stop()
        net.close()


def mark_code(marker: Path, label: str) -> str:
    """Code that leaves a line in ``marker`` if (and only if) an engine runs it."""
    return f"import netns; netns.mark({str(marker)!r}, {label!r})"


def installed_pids(log: Path) -> dict[int, dict]:
    if not log.exists():
        return {}
    return {r["pid"]: r for r in map(json.loads, log.read_text().splitlines())}


# --- a kernelwire cluster across four hosts ----------------------------------


@pytest.fixture(scope="module")
def kw(tmp_path_factory) -> Iterator[Hosts]:
    with hosts(tmp_path_factory.mktemp("multihost"), kernelwire=True) as running:
        yield running


def test_every_process_on_every_host_runs_kernelwire(kw):
    assert kw.call("result = type(client.session).__module__") == "kernelwire.session"
    assert set(kw.engine_on) == {"b", "c"}  # one engine on each engine host
    installed = installed_pids(kw.cluster.install_log)
    expected_at_least = {"a": 4, "b": 2, "c": 2, "d": 1}  # controller + forks, engine + nanny
    for host, least in expected_at_least.items():
        pids = kw.net.pids(host)
        assert len(pids) >= least, (host, pids)
        for pid in pids:
            assert pid in installed, f"{host}: pid {pid} did not install kernelwire"
            assert installed[pid]["jupyter_client_session"] == "kernelwire.session.Session"


def test_apply_and_map_direct_and_load_balanced(kw):
    got = kw.call(
        "tasks = [lb.apply_async(pow, i, 2) for i in range(40)]\n"
        "result = {\n"
        "  'apply': dv.apply_sync(operator.mul, 6, 7),\n"
        "  'map': dv.map_sync(pow, range(20), [2] * 20),\n"
        "  'lb_apply': [t.get(timeout=60) for t in tasks],\n"
        "  'lb_engines': sorted({t.engine_id for t in tasks}),\n"
        "  'lb_map': lb.map_sync(str, range(30)),\n"
        "  'module_fn': lb.map_sync(netns.slow_square, range(8), [0.01] * 8),\n"
        "}"
    )
    assert got["apply"] == [42, 42]
    assert got["map"] == [x**2 for x in range(20)]
    assert got["lb_apply"] == [i**2 for i in range(40)]
    assert got["lb_engines"] == sorted(kw.engine_on.values())  # both hosts took tasks
    assert got["lb_map"] == [str(i) for i in range(30)]
    assert got["module_fn"] == [x * x for x in range(8)]


def test_push_pull_100mb_and_nested_arrays(kw):
    got = kw.call(
        "import numpy as np\n"
        "big = np.random.default_rng(13).integers(0, 256, 100_000_000, dtype=np.uint8)\n"
        "t0 = time.perf_counter()\n"
        "dv.push({'big': big}, block=True)\n"
        "pulled = dv.pull('big', block=True)\n"
        "seconds = time.perf_counter() - t0\n"
        "nested = {'a': [np.arange(10), {'b': np.ones((300, 400)), 'c': [np.float32(1.5),\n"
        "        np.arange(6).reshape(2, 3)]}], 't': (np.zeros(3, dtype=np.int8), 's')}\n"
        "dv.push({'nested': nested}, block=True)\n"
        "back = dv.pull('nested', block=True)\n"
        "def same(x, y):\n"
        "    if isinstance(x, np.ndarray):\n"
        "        return isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y)\n"
        "    if isinstance(x, dict):\n"
        "        return type(y) is dict and x.keys() == y.keys() and all(\n"
        "            same(x[k], y[k]) for k in x)\n"
        "    if isinstance(x, (list, tuple)):\n"
        "        return type(x) is type(y) and len(x) == len(y) and all(map(same, x, y))\n"
        "    return type(x) is type(y) and x == y\n"
        "dv.execute('big_sum = int(big.sum())', block=True)\n"
        "result = {\n"
        "  'big_equal': [bool(np.array_equal(p, big)) for p in pulled],\n"
        "  'engine_sums': dv.pull('big_sum', block=True), 'sum': int(big.sum()),\n"
        "  'nested_equal': [same(nested, b) for b in back], 'seconds': seconds,\n"
        "}\n"
        "dv.execute('del big', block=True)\n"
        "del big, pulled",
        timeout=180,
    )
    assert got["big_equal"] == [True, True]
    assert got["engine_sums"] == [got["sum"]] * 2
    assert got["nested_equal"] == [True, True]


def test_scatter_gather(kw):
    got = kw.call(
        "import numpy as np\n"
        "dv.scatter('part', list(range(101)), block=True)\n"
        "arr = np.arange(1000, dtype=np.float64)\n"
        "dv.scatter('arr', arr, block=True)\n"
        "result = {\n"
        "  'lens': dv.apply_sync(len, ipp.Reference('part')),\n"
        "  'gathered': dv.gather('part', block=True),\n"
        "  'array': bool(np.array_equal(dv.gather('arr', block=True), arr)),\n"
        "}"
    )
    assert sorted(got["lens"]) == [50, 51]
    assert got["gathered"] == list(range(101))
    assert got["array"]


def test_execute_with_stdout(kw):
    got = kw.call(
        "ar = dv.execute('import os\\nprint(\"hello from\", os.getpid())\\nanswer = 6 * 7',"
        " block=False)\n"
        "ar.get(timeout=30)\n"
        "ar.wait_for_output(timeout=10)\n"
        "result = {'stdout': ar.stdout, 'answer': dv.pull('answer', block=True),"
        " 'pids': [pids[e] for e in ar.engine_id]}"
    )
    assert got["answer"] == [42, 42]
    assert got["stdout"] == [f"hello from {pid}\n" for pid in got["pids"]]


# --- mixed clusters across hosts ---------------------------------------------

# (controller, engine on B, engine on C, client) on kernelwire?
MIXES = {
    "kw-controller/stock-engine-B/kw-engine-C/kw-client": (True, False, True, True),
    "stock-controller/kw-engines/stock-client": (False, True, True, False),
}


@pytest.mark.parametrize("mix", list(MIXES))
def test_mixed_cluster_across_hosts(mix, tmp_path):
    controller, on_b, on_c, client = MIXES[mix]
    with hosts(
        tmp_path, kernelwire=True, engines={"b": on_b, "c": on_c}, controller=controller,
        client=client,
    ) as mixed:  # fmt: skip
        installed = installed_pids(mixed.cluster.install_log)
        for host, use in {"a": controller, "b": on_b, "c": on_c, "d": client}.items():
            pids = mixed.net.pids(host)
            assert pids and all((pid in installed) is use for pid in pids), (host, use)
        got = mixed.call(
            "import numpy as np\n"
            "array = np.arange(1_250_000, dtype=np.float64)\n"
            "dv.push({'array': array}, block=True)\n"
            "ar = dv.execute('print(\"out\", int(array.sum()))', block=False); ar.get(timeout=30)\n"
            "ar.wait_for_output(timeout=10)\n"
            "result = {\n"
            "  'session': type(client.session).__module__,\n"
            "  'apply': dv.apply_sync(operator.mul, 6, 7),\n"
            "  'lb': lb.map_sync(netns.slow_square, range(20), [0] * 20),\n"
            "  'pulled': [bool(np.array_equal(p, array)) for p in dv.pull('array', block=True)],\n"
            "  'stdout': ar.stdout, 'sum': int(array.sum()),\n"
            "}"
        )
    assert got["session"] == ("kernelwire.session" if client else "jupyter_client.session")
    assert got["apply"] == [42, 42]
    assert got["lb"] == [x * x for x in range(20)]
    assert got["pulled"] == [True, True]
    assert got["stdout"] == [f"out {got['sum']}\n"] * 2


# --- faults ------------------------------------------------------------------


def _sigkill_engine(tmp_path: Path, kernelwire: bool) -> dict:
    with hosts(tmp_path, kernelwire) as h:
        eb, ec = h.engine_on["b"], h.engine_on["c"]
        h.call(
            f"long_b = client[{eb}].apply_async(netns.slow_square, 3, 60)\n"
            "tasks = [lb.apply_async(netns.slow_square, i, 1.0) for i in range(6)]\n"
            "time.sleep(1.5)"
        )
        os.kill(h.pid_of[eb], signal.SIGKILL)  # mid-task: long_b is running on B
        killed = time.monotonic()
        got = h.call(
            "t0 = time.monotonic()\n"
            f"gone = netns.wait_for(lambda: {eb} not in client.ids, 30)\n"
            "noticed = time.monotonic() - t0\n"
            "result = {\n"
            "  'direct_on_killed': outcome(long_b)[0],\n"
            "  'lb': [outcome(t) for t in tasks],\n"
            "  'lb_engines': [getattr(t, 'engine_id', None) for t in tasks],\n"
            "  'unregistered': gone, 'noticed_after_s': round(noticed, 2),\n"
            "  'ids_after': sorted(client.ids),\n"
            "  'new_work': lb.map_sync(pow, range(10), [2] * 10),\n"
            f"  'new_direct': client[{ec}].apply_sync(operator.mul, 6, 7),\n"
            "}",
            timeout=120,
        )
        got["seconds"] = round(time.monotonic() - killed, 2)
    lb = got.pop("lb")
    got["lb_ok"] = sum(o[0] == "ok" and o[1] == i * i for i, o in enumerate(lb))
    got["lb_failed"] = sorted({o[0] for o in lb if o[0] != "ok"})
    got["lost"] = len(lb) - got["lb_ok"] + (got["direct_on_killed"] != "ok")
    got["ec"] = ec
    return got


def test_engine_sigkilled_mid_task(tmp_path):
    observed = {f: _sigkill_engine(tmp_path / f, f == "kernelwire") for f in FLAVORS}
    record("engine SIGKILL mid-task", observed)
    for got in observed.values():
        assert got["direct_on_killed"] == "EngineError"
        # the lost tasks fail with ipyparallel's engine-death error
        assert got["lb_failed"] in ([], ["EngineError"])
        assert got["lb_ok"] >= 4  # only what was on B is lost (at most one task queued there)
        assert got["unregistered"] and got["ids_after"] == [got["ec"]]
        assert got["new_work"] == [x**2 for x in range(10)]
        assert got["new_direct"] == 42
    assert observed["kernelwire"]["lost"] <= observed["stock"]["lost"]


def _link_down(tmp_path: Path, kernelwire: bool, down_seconds: float = 5.0) -> dict:
    with hosts(tmp_path, kernelwire) as h:
        eb, ec = h.engine_on["b"], h.engine_on["c"]
        h.call(
            f"long_b = client[{eb}].apply_async(netns.slow_square, 7, 2.0)\n"
            "tasks = [lb.apply_async(netns.slow_square, i, 0.5) for i in range(8)]\n"
            "time.sleep(0.5)"
        )
        h.net.link("b", up=False)
        down = time.monotonic()
        during = h.call(
            "t0 = time.monotonic()\n"
            f"gone = netns.wait_for(lambda: {eb} not in client.ids, 20)\n"
            "result = {'unregistered': gone, 'noticed_after_s': round(time.monotonic() - t0, 2),\n"
            f"  'direct_c': client[{ec}].apply_sync(pow, 2, 10),\n"
            "  'lb_while_down': lb.map_sync(pow, range(5), [3] * 5)}",
            timeout=60,
        )
        time.sleep(max(0.0, down_seconds - (time.monotonic() - down)))
        h.net.link("b", up=True)
        after = h.call(
            "result = {'direct_on_b': outcome(long_b, 30)[0],\n"
            "  'lb': [outcome(t, 30) for t in tasks]}\n"
            "time.sleep(5)\n"  # B's heartbeats resume: does the controller take it back?
            "result.update(ids_after_up=sorted(client.ids),\n"
            "  new_work=lb.map_sync(pow, range(10), [2] * 10))",
            timeout=120,
        )
        engine_b = h.cluster.engines["b"][0]
        after["engine_b_alive_after_up"] = engine_b.poll() is None
        after["controller_ignored_returning_heart"] = "ignoring new heart" in h.controller_log()
    got = {**during, **after, "down_s": down_seconds, "eb": eb, "ec": ec}
    lb = got.pop("lb")
    got["lb_ok"] = sum(o[0] == "ok" and o[1] == i * i for i, o in enumerate(lb))
    got["lb_failed"] = sorted({o[0] for o in lb if o[0] != "ok"})
    got["lost"] = len(lb) - got["lb_ok"] + (got["direct_on_b"] != "ok")
    # engine ids follow registration order, which differs run to run: compare hosts
    host_of = {eb: "b", ec: "c"}
    got["hosts_after_up"] = sorted(host_of.get(i, "new") for i in got["ids_after_up"])
    return got


def test_link_down_then_up(tmp_path):
    observed = {f: _link_down(tmp_path / f, f == "kernelwire") for f in FLAVORS}
    record("link down 5 s then up", observed)
    for got in observed.values():
        assert got["unregistered"]  # the heartbeat declared B's engine dead
        assert got["direct_c"] == 1024 and got["lb_while_down"] == [x**3 for x in range(5)]
        assert got["direct_on_b"] == "EngineError"
        assert got["lb_failed"] in ([], ["EngineError"])
        assert got["lb_ok"] >= 6
        assert got["new_work"] == [x**2 for x in range(10)]
    assert observed["kernelwire"]["lost"] <= observed["stock"]["lost"]
    # whatever ipyparallel does with the returning engine, both do the same
    keys = ("hosts_after_up", "engine_b_alive_after_up", "controller_ignored_returning_heart")
    assert {k: observed["kernelwire"][k] for k in keys} == {k: observed["stock"][k] for k in keys}


def _controller_restart(tmp_path: Path, kernelwire: bool) -> dict:
    # --reuse keeps the connection files (ports and key) for the restarted controller
    with hosts(tmp_path, kernelwire, controller_args=("--reuse",)) as h:
        eb, ec = h.engine_on["b"], h.engine_on["c"]
        # The in-flight reply must reach the client through the restarted scheduler, which
        # drops it if the client has not reconnected yet (stock loses it then too). So the
        # task ends only when the test opens its gate: after a round trip through the new
        # scheduler to the other engine shows the client is connected again.
        gate, started = tmp_path / "in_flight.gate", tmp_path / "in_flight.started"
        h.call(
            f"in_flight = client[{eb}].apply_async(netns.gated_square, 5, {str(gate)!r}, 120,"
            f" {str(started)!r})"
        )
        # stop the controller only once the engine runs the task: a request still in
        # the scheduler when it stops is lost, on stock too, and is not what this tests
        running = netns.wait_for(started.exists, 30)
        controller = h.cluster.controller
        assert controller is not None
        controller.send_signal(signal.SIGTERM)
        controller.wait(timeout=20)
        down = [p for p in h.net.pids("a")]
        h.cluster.start_controller("--restore")
        restarted = time.monotonic()
        # a request sent before the new scheduler knows engine C is dropped: retry, bounded
        reconnected = h.call(
            "for attempt in range(30):\n"
            f"    result = outcome(client[{ec}].apply_async(operator.mul, 6, 7), 2)\n"
            "    if result[0] == 'ok':\n"
            "        break\n",
            timeout=90,
        )
        gate.touch()
        got = h.call(
            "t0 = time.monotonic()\n"
            "result = {'in_flight': outcome(in_flight, 30)}\n"
            "result['old_client_direct'] = outcome(dv.apply_async(operator.mul, 6, 7), 30)\n"
            "result['old_client_lb'] = outcome(lb.map_async(pow, range(10), [2] * 10), 30)\n"
            "result['old_client_ids'] = sorted(client.ids)\n",
            timeout=120,
        )
        fresh = h.cluster.agent("d")
        got["new_client_ids"] = h.cluster.wait_for_engines(fresh, 2, timeout=30)
        got["new_client_lb"] = fresh.call(
            "import operator\n"
            "result = client.load_balanced_view().map_sync(operator.neg, range(10))"
        )
        got["reconnected"] = reconnected
        got["running_before_stop"] = running
        got["seconds_after_restart"] = round(time.monotonic() - restarted, 2)
        got["controller_processes_while_down"] = len(down)
    return got


def test_controller_restart_with_restore(tmp_path):
    observed = {f: _controller_restart(tmp_path / f, f == "kernelwire") for f in FLAVORS}
    record("controller stopped and restarted (--reuse, then --restore)", observed)
    for got in observed.values():
        assert got["controller_processes_while_down"] == 0
        assert got["new_client_ids"] == [0, 1]  # the engines were restored, not re-registered
        assert got["new_client_lb"] == [-x for x in range(10)]
        assert got["old_client_direct"] == ["ok", [42, 42]]
        assert got["reconnected"] == ["ok", 42]
        assert got["running_before_stop"]
    kw, stock = observed["kernelwire"], observed["stock"]
    for key in ("in_flight", "old_client_direct", "old_client_lb"):
        assert kw[key][0] in ("ok", stock[key][0]), key  # nothing stock kept is lost


# --- intruders ---------------------------------------------------------------


def _wrong_key_engine(tmp_path: Path, kernelwire: bool) -> dict:
    marker = tmp_path / "executed.txt"
    with hosts(tmp_path, kernelwire) as h:
        # an engine on E whose connection file has another key
        intruder_engine = h.cluster.start_engine("e", None, b"not-the-key", "--IPEngine.timeout=5")
        stranger = h.intruder()
        engine_file = h.cluster.connection_file("e", "engine", b"not-the-key")
        client_file = h.cluster.connection_file("e", "client", b"not-the-key")
        eb = h.engine_on["b"]
        uuid = h.call(f"result = client._engines[{eb}]")
        # the stranger also sends work, signed with its key, to the direct and task queues
        sent = stranger.call(
            "import json, time, netns\n"
            "from jupyter_client.session import Session\n"
            f"info = json.load(open({str(client_file)!r}))\n"
            "s = Session(key=info['key'].encode(), signature_scheme=info['signature_scheme'])\n"
            f"code = {mark_code(marker, 'intruder')!r}\n"
            "def request():\n"
            "    return s.msg('execute_request', {'code': code, 'silent': False,"
            " 'store_history': False, 'user_expressions': {}, 'allow_stdin': False})\n"
            "replies = 0\n"
            "for i in range(5):\n"
            f"    replies += netns.send_frames(info['location'], info['mux'],"
            f" s.serialize(request(), ident=[{uuid!r}.encode()]), wait=0.2)\n"
            "    replies += netns.send_frames(info['location'], info['task'],"
            " s.serialize(request(), ident=[b'']), wait=0.2)\n"
            "result = replies"
        )
        exited = netns.wait_for(lambda: intruder_engine.poll() is not None, 40)
        got = h.call(
            "time.sleep(1)\n"
            "result = {'ids': sorted(client.ids),\n"
            "  'work_after': lb.map_sync(pow, range(10), [2] * 10)}"
        )
        # control: the same request signed with the right key does run (the test can fail)
        key = json.loads(h.cluster.connection_file("d", "client").read_text())["key"]
        stranger.call(
            f"s = Session(key={key!r}.encode(), signature_scheme=info['signature_scheme'])\n"
            f"code = {mark_code(marker, 'right-key')!r}\n"
            f"netns.send_frames(info['location'], info['mux'],"
            f" s.serialize(request(), ident=[{uuid!r}.encode()]), wait=1.0)"
        )
        netns.wait_for(lambda: netns.marks(marker), 10)
        log = h.controller_log()
        got.update(
            replies_to_intruder=sent,
            intruder_engine_exited=exited,
            intruder_engine_rc=intruder_engine.poll(),
            marks=netns.marks(marker),
            controller_invalid_signature_lines=log.count("Invalid Signature"),
            engine_file_key_differs=json.loads(engine_file.read_text())["key"] != key,
        )
    return got


def test_wrong_key_engine_and_client_are_refused(tmp_path):
    observed = {f: _wrong_key_engine(tmp_path / f, f == "kernelwire") for f in FLAVORS}
    record("wrong-key engine and client on E", observed)
    for got in observed.values():
        assert got["engine_file_key_differs"]
        assert got["ids"] == [0, 1]  # the intruder engine never registered
        assert got["intruder_engine_exited"] and got["intruder_engine_rc"] != 0
        assert got["marks"] == ["right-key"]  # nothing the stranger signed ran; the control did
        assert got["work_after"] == [x**2 for x in range(10)]
    assert observed["kernelwire"]["replies_to_intruder"] <= observed["stock"]["replies_to_intruder"]


def _replay(tmp_path: Path, kernelwire: bool) -> dict:
    marker = tmp_path / "executed.txt"
    with hosts(tmp_path, kernelwire) as h:
        eb, ec = h.engine_on["b"], h.engine_on["c"]
        # a legitimate client on D: a task through the scheduler, then raw requests
        # signed by its own Session, whose exact frames the stranger captured
        captured = h.call(
            f"done = lb.apply_async(netns.mark, {str(marker)!r}, 'task'); done.get(timeout=30)\n"
            "import zmq\n"
            "info = client._config\n"
            "def sent(port, msg, ident):\n"
            "    frames = client.session.serialize(msg, ident=ident)\n"
            "    netns.send_frames(info['location'], port, frames, wait=1.0)\n"
            "    return [f.hex() for f in frames]\n"
            "resubmit = client.session.msg('resubmit_request', {'msg_ids': [done.msg_id]})\n"
            f"code = {mark_code(marker, 'execute')!r}\n"
            "execute = client.session.msg('execute_request', {'code': code, 'silent': False,"
            " 'store_history': False, 'user_expressions': {}, 'allow_stdin': False})\n"
            f"engine_b = client._engines[{eb}].encode()\n"
            f"engine_c = client._engines[{ec}].encode()\n"
            "ports = {'registration': int(info['registration'].rsplit(':', 1)[1]),\n"
            "         'mux': int(info['mux'].rsplit(':', 1)[1])}\n"
            "result = {'resubmit': sent(ports['registration'], resubmit, []),\n"
            "          'execute': sent(ports['mux'], execute, [engine_b]),\n"
            "          'ports': ports, 'location': info['location'],\n"
            "          'engine_c': engine_c.hex()}"
        )
        netns.wait_for(lambda: len(netns.marks(marker)) >= 3, 15)
        before = netns.marks(marker)
        stranger = h.intruder()
        # the stranger (no key) replays the captured frames, each from a new connection
        replies = stranger.call(
            "import netns\n"
            f"c = {json.dumps(captured)}\n"
            "frames = {k: [bytes.fromhex(f) for f in c[k]] for k in ('resubmit', 'execute')}\n"
            "result = [netns.send_frames(c['location'], c['ports']['registration'],"
            " frames['resubmit'], wait=1.0) for _ in range(3)]\n"
            "result += [netns.send_frames(c['location'], c['ports']['mux'],"
            " frames['execute'], wait=1.0) for _ in range(3)]"
        )
        time.sleep(2)
        after_same_destination = netns.marks(marker)
        # the routing frame is not signed: the same message to another engine
        stranger.call(
            "ex = list(frames['execute']); ex[0] = bytes.fromhex(c['engine_c'])\n"
            "netns.send_frames(c['location'], c['ports']['mux'], ex, wait=1.0)"
        )
        netns.wait_for(lambda: len(netns.marks(marker)) > len(after_same_destination), 5)
        after_other_engine = netns.marks(marker)
        work = h.call("result = lb.map_sync(pow, range(10), [2] * 10)")
        log = h.controller_log()
    return {
        "legit_marks": before,
        "replays_executed": len(after_same_destination) - len(before),
        "replies_to_replays": sum(replies),
        "rerouted_replay_executed": len(after_other_engine) - len(after_same_destination),
        "controller_duplicate_signature_lines": log.count("Duplicate Signature"),
        "work_after": work,
    }


def test_replayed_messages_are_rejected(tmp_path):
    observed = {f: _replay(tmp_path / f, f == "kernelwire") for f in FLAVORS}
    record("replayed captured messages from E", observed)
    for got in observed.values():
        # the originals ran: the task, its resubmission by the Hub, the direct execute
        assert sorted(got["legit_marks"]) == ["execute", "task", "task"]
        assert got["replays_executed"] == 0  # to the Hub and to the same engine: rejected
        assert got["controller_duplicate_signature_lines"] >= 3
        assert got["work_after"] == [x**2 for x in range(10)]
    kw, stock = observed["kernelwire"], observed["stock"]
    assert kw["rerouted_replay_executed"] <= stock["rerouted_replay_executed"]


def _flood(tmp_path: Path, kernelwire: bool, seconds: float = 8.0) -> dict:
    with hosts(tmp_path, kernelwire) as h:
        controller_pids = set(h.net.pids("a"))
        ports = netns.controller_ports(
            h.cluster.connection_file("e", "engine"), h.cluster.connection_file("e", "client")
        )
        stranger = h.intruder()
        relayed = (ports["engine:iopub"],)  # see test_undelimited_garbage_relayed_by_iopub
        stranger.call(
            "import netns\n"
            f"flooding = netns.Background(netns.flood, {h.net.addresses['a']!r}, {ports!r},"
            f" {seconds}, delimited={relayed!r})"
        )
        during = h.call(
            # ipyparallel 9.2's Client logs an invalid message with self.log, which it
            # lacks: give it one, or the first forged message relayed to it stalls it
            "import logging; client.log = logging.getLogger('client')\n"
            "t0 = time.monotonic(); batches = []; stalled = None\n"
            f"while time.monotonic() - t0 < {seconds} and len(batches) < 200:\n"
            "    t = time.monotonic()\n"
            "    got = [outcome(lb.map_async(pow, range(20), [2] * 20), 20),\n"
            "           outcome(dv.apply_async(operator.mul, 6, 7), 20)]\n"
            "    if got != [['ok', [x**2 for x in range(20)]], ['ok', [42, 42]]]:\n"
            "        stalled = got; break\n"
            "    batches.append(time.monotonic() - t)\n"
            "result = {'batches_ok': len(batches), 'stalled': stalled,\n"
            "  'worst_batch_s': round(max(batches, default=0), 3)}",
            timeout=seconds + 90,
        )
        sent = stranger.call("result = flooding.join(60)", timeout=90)
        after = h.call(
            "ar = lb.map_async(pow, range(50), [2] * 50)\n"
            "result = {'same_client_after': outcome(ar, 20)[0]}",
            timeout=60,
        )
        # the controller itself: a client connecting after the flood gets served
        fresh = h.cluster.agent("d")
        after["fresh_client_ids"] = h.cluster.wait_for_engines(fresh, 2, timeout=30)
        after["fresh_client_lb"] = fresh.call(
            "result = client.load_balanced_view().map_sync(pow, range(50), [2] * 50)"
        ) == [x**2 for x in range(50)]
        alive = [netns.pid_alive(p) for p in controller_pids]
        relayed_invalid = (
            h.cluster.log("agent-d").read_text(errors="replace").count("Invalid Message")
        )
    return {
        **during,
        **after,
        "sent": sent,
        "controller_processes_alive": alive,
        "invalid_messages_relayed_to_client": relayed_invalid,
    }


def test_flood_every_controller_port(tmp_path):
    observed = {f: _flood(tmp_path / f, f == "kernelwire") for f in FLAVORS}
    record("garbage/truncated/oversized flood of every controller port from E", observed)
    for got in observed.values():
        assert got["sent"]["garbage"] and got["sent"]["oversized"] and got["sent"]["raw_tcp"]
        assert got["batches_ok"] >= 1  # tasks completed during the flood
        assert all(got["controller_processes_alive"])  # nothing crashed
        assert got["fresh_client_ids"] == [0, 1] and got["fresh_client_lb"]  # nor stalled
        assert got["same_client_after"] == "ok"  # and the flooded client recovers
    # "stalled" (a direct apply that did not complete in 20 s during the flood, stock and
    # kernelwire alike; see docs/multihost.md) is recorded, not compared: it comes by chance


def _undelimited_iopub_garbage(tmp_path: Path, kernelwire: bool) -> dict:
    with hosts(tmp_path, kernelwire) as h:
        port = netns.controller_ports(h.cluster.connection_file("e", "engine"))["engine:iopub"]
        before = h.call("result = lb.map_sync(pow, range(5), [2] * 5)")
        stranger = h.intruder()
        # one message without the Jupyter delimiter, from a PUB, as an engine's IOPub would
        stranger.call(
            "import time, zmq\n"
            "ctx = zmq.Context(); pub = ctx.socket(zmq.PUB); pub.linger = 0\n"
            f"pub.connect('tcp://{h.net.addresses['a']}:{port}'); time.sleep(1)\n"
            "pub.send_multipart([b'engine.0.stdout', b'not a jupyter message'])\n"
            "time.sleep(0.5); pub.close(); ctx.term()"
        )
        got = h.call(
            "ar = lb.map_async(pow, range(5), [2] * 5)\nresult = {'after': outcome(ar, 15)[0]}"
        )
        text = h.cluster.log("agent-d").read_text(errors="replace")
        got.update(
            before_ok=before == [x**2 for x in range(5)],
            client_saw_no_delimiter="DELIM not in msg_list" in text,
        )
    return got


def test_undelimited_garbage_relayed_by_iopub(tmp_path):
    """ipyparallel's IOPub relay forwards anything sent to the engine-facing port
    to every client, and ipyparallel 9.2's Client lets the error of a message
    without the delimiter escape its IOPub handler; record what that does to a
    client, stock and kernelwire alike."""
    observed = {f: _undelimited_iopub_garbage(tmp_path / f, f == "kernelwire") for f in FLAVORS}
    record("one undelimited message to the engine-facing IOPub port from E", observed)
    for got in observed.values():
        assert got["before_ok"] and got["client_saw_no_delimiter"]
    assert observed["kernelwire"]["after"] in ("ok", observed["stock"]["after"])
