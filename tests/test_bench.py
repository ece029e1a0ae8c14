"""The benchmark harness: a tiny --quick run end to end, and the pieces that compute figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kernelwire.bench import floor, report, runner, stats
from kernelwire.bench.__main__ import main
from kernelwire.bench.base import Case, Measurement, Sample, Scenario
from kernelwire.bench.payloads import PAYLOADS, frame_sizes, reference_frames
from kernelwire.bench.processes import LineProcess

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The command line run ends by drawing chart.png, which needs matplotlib (the bench extra).
needs_matplotlib = pytest.mark.needs(
    "matplotlib", reason="python -m kernelwire.bench draws its chart with it"
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One tiny --quick run through the real command line, shared by the checks below."""
    out = tmp_path_factory.mktemp("bench")
    argv = [
        sys.executable, "-m", "kernelwire.bench", "--quick",
        "--scale", "0.02", "--rounds", "2", "--round-trips", "20",
        "--sizes", "small,64KB", "--output", str(out), "--floor-cache", str(out / "cache"),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@needs_matplotlib
def test_quick_run_writes_json_of_every_sample(quick_run):
    out, _ = quick_run
    data = json.loads((out / "results.json").read_text())
    unavailable = {c for c, v in data["contenders"].items() if v["unavailable"]}
    # the pure core, jupyter_client and raw pyzmq can always run
    assert {"kernelwire-pure", "jupyter_client", "pyzmq"}.isdisjoint(unavailable)
    # each kernelwire contender records the core and I/O modules its Session ran
    ran = {c: v["implementations"] for c, v in data["contenders"].items()}
    assert ran["kernelwire-pure"] == {"core": "pure", "io": "pure"}
    if "kernelwire" not in unavailable:
        assert ran["kernelwire"] == {"core": "cython", "io": "cython"}
    assert ran["jupyter_client"] is None and ran["pyzmq"] is None
    # 2 rounds x (2 transports x 2 sizes throughput + 2 transports latency) per contender
    for contender in set(data["contenders"]) - unavailable:
        mine = [s for s in data["samples"] if s["contender"] == contender]
        assert len(mine) == 2 * (4 + 2), contender
        assert all(s["error"] is None and s["value"] > 0 for s in mine), mine
        assert {s["round"] for s in mine} == {0, 1}
    # every ratio summarises the two rounds of its case
    assert data["ratios"]
    assert all(r["spread"]["n"] == 2 for r in data["ratios"])
    assert {r["baseline"] for r in data["ratios"]} >= {"jupyter_client", "pyzmq"}


@needs_matplotlib
def test_quick_run_floor_measured_or_explained(quick_run):
    out, _ = quick_run
    data = json.loads((out / "results.json").read_text())
    reason = data["contenders"]["floor"]["unavailable"]
    floor_samples = [s for s in data["samples"] if s["contender"] == "floor"]
    if reason is None:
        assert len(floor_samples) == 12
    else:
        assert not floor_samples and reason.startswith("not available")


@needs_matplotlib
def test_quick_run_markdown_and_terminal_tables(quick_run):
    out, proc = quick_run
    md = (out / "results.md").read_text()
    assert "### PUSH -> PULL throughput" in md and "### DEALER <-> ROUTER round trip" in md
    table = [line for line in md.splitlines() if line.startswith("| tcp small |")]
    assert len(table) == 2  # one throughput row, one latency row
    header = next(line for line in md.splitlines() if line.startswith("| case |"))
    assert len(table[0].split("|")) == len(header.split("|"))
    assert "| kernelwire (pure) [core=pure io=pure] |" in header  # what the column ran
    assert "kernelwire (pure) [core=pure io=pure]" in proc.stdout
    assert "vs jupyter_client" in proc.stdout and "ipc 64KB" in proc.stdout


@needs_matplotlib
def test_quick_run_png_chart(quick_run):
    out, _ = quick_run
    png = (out / "chart.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    import matplotlib.image

    image = matplotlib.image.imread(out / "chart.png")
    assert image.shape[0] > 300 and image.shape[1] > 600


def test_floor_builds_and_moves_frames(tmp_path):
    try:
        built = floor.build(tmp_path)
    except floor.FloorUnavailable as exc:  # no compiler here: it must say why
        assert str(exc)
        return
    sizes = frame_sizes(PAYLOADS["small"])
    pull = LineProcess(built.command("pull", "tcp://127.0.0.1:*", 50, []))
    endpoint = pull.read(timeout=30)["endpoint"]
    push = LineProcess(built.command("push", endpoint, 50, sizes))
    assert push.read(timeout=30)["seconds"] >= 0
    assert pull.read(timeout=30)["seconds"] > 0
    push.close()
    pull.close()
    # the same build is reused from the cache
    assert floor.build(tmp_path).program == built.program


def test_reference_frames_are_jupyter_frames():
    frames = reference_frames(PAYLOADS["64KB"])
    assert frames[0] == b"<IDS|MSG>"
    assert len(frames[1]) == 64  # hex HMAC-SHA256
    assert memoryview(frames[-1]).nbytes == 64 * 1024
    reply = reference_frames(PAYLOADS["small"], reply=True)
    assert b"execute_reply" in reply[2]


def test_measurement_units():
    m = Measurement(count=1000, seconds=0.5, bytes_per_op=2000)
    assert m.value("msg/s") == 2000
    assert m.value("MB/s") == pytest.approx(4.0)
    assert m.value("µs") == pytest.approx(500)
    assert m.value("s") == 0.5
    assert m.speed == 2000
    with pytest.raises(ValueError):
        Case("x", "x", unit="furlongs")


def _sample(contender: str, rnd: int, seconds: float) -> Sample:
    return Sample("s", "c", contender, rnd, "msg/s", Measurement(100, seconds))


def test_ratios_are_taken_round_by_round():
    # round 0: machine fast; round 1: everything twice as slow -> the ratio stays 2
    samples = [
        _sample("kernelwire", 0, 1.0), _sample("jupyter_client", 0, 2.0),
        _sample("kernelwire", 1, 2.0), _sample("jupyter_client", 1, 4.0),
        _sample("pyzmq", 1, 1.0),
        Sample("s", "c", "floor", 0, "msg/s", error="boom"),
    ]  # fmt: skip
    by = {r.baseline: r.spread for r in stats.ratios(samples, "kernelwire")}
    assert by["jupyter_client"].median == 2.0 and by["jupyter_client"].n == 2
    assert by["pyzmq"].median == 0.5 and by["pyzmq"].n == 1
    assert "floor" not in by
    summary = stats.summarize(samples)[("s", "c", "floor")]
    assert summary.spread is None and summary.errors == ["boom"]
    kw = stats.summarize(samples)[("s", "c", "kernelwire")].spread
    assert (kw.median, kw.low, kw.high) == (75.0, 50.0, 100.0)


def test_every_scenario_is_listed_once_under_its_own_name():
    from kernelwire.bench.ipp_cluster import IPyParallel, IPyParallelAcrossHosts
    from kernelwire.bench.scenarios import Latency, Throughput
    from kernelwire.bench.serialize_object import SerializeObject

    classes = [Throughput, Latency, IPyParallel, IPyParallelAcrossHosts, SerializeObject]
    assert list(runner.SCENARIOS.values()) == classes
    assert all(runner.SCENARIOS[cls.name] is cls for cls in classes)


class Countdown(Scenario):
    """A scenario added to the list, enabled by its own option."""

    name = "test-countdown"
    title = "countdown"
    default = False
    kinds = ("session",)

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--countdown", action="store_true")

    def enabled(self, options):
        return options.countdown or super().enabled(options)

    def cases(self, options):
        return [Case("local/3", "three", unit="s")]

    def measure(self, bench, case, contender):
        session = bench.session_class(contender.name)()
        msg = session.msg("status", {"execution_state": "idle"})
        assert session.deserialize(session.serialize(msg)[1:])["msg_type"] == "status"
        return Measurement(3, 0.25)


def test_added_scenario_runs_only_when_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(runner.SCENARIOS, Countdown.name, Countdown)
    args = ["--contenders", "kernelwire-pure,jupyter_client,pyzmq", "--rounds", "2", "--no-chart"]
    assert main([*args, "--countdown", "--scenarios", "test-countdown", "--output",
                 str(tmp_path / "a")]) == 0  # fmt: skip
    data = json.loads((tmp_path / "a" / "results.json").read_text())
    assert [s["name"] for s in data["scenarios"]] == ["test-countdown"]
    # Session contenders only; raw pyzmq is not a Session
    contenders = sorted({s["contender"] for s in data["samples"]})
    assert contenders == ["jupyter_client", "kernelwire-pure"]
    assert all(s["value"] == 0.25 for s in data["samples"])
    assert "countdown" in capsys.readouterr().out


def test_results_render_unavailable_contenders():
    case = Case("tcp/small", "tcp small")

    class Fake(Scenario):
        name, title = "fake", "Fake"

    samples = [_sample("kernelwire-pure", 0, 1.0), _sample("jupyter_client", 0, 2.0)]
    samples = [Sample("fake", case.key, s.contender, 0, "msg/s", s.measurement) for s in samples]
    results = report.Results(
        env={"cpu": "cpu", "cpus": 1, "os": "os", "python": "py", "packages": {}, "libzmq": "4"},
        options={"rounds": 1},
        scenarios=[(Fake(), [case])],
        contenders=["kernelwire", "kernelwire-pure", "jupyter_client"],
        unavailable={"kernelwire": "not available (no compiled core)"},
        samples=samples,
        seconds=1.0,
    )
    assert results.subject == "kernelwire-pure"
    md = report.markdown(results, "python -m kernelwire.bench")
    row = next(line for line in md.splitlines() if line.startswith("| tcp small"))
    assert "not available" in row and "2.00× (2.00–2.00)" in row
    assert "kernelwire: not available (no compiled core)" in md
