"""Run kernelwire's peers' own test suites on kernelwire, next to a stock run.

The suites: IPython Parallel 9.2.0's ``ipyparallel/tests``, ipykernel 7.4.0's
``tests/`` and jupyter_client 8.10.0's whole ``tests/``, from their sdists,
fetched at run time (checked by SHA-256, cached in ``.cache/upstream``, never
committed) and extracted afresh for every run. Each suite runs with pytest in
the sdist's own directory, so its own ``[tool.pytest.ini_options]`` applies,
in three modes:

- ``stock``: no kernelwire anywhere;
- ``kernelwire``: ``KERNELWIRE_INSTALL=1``, the compiled core;
- ``pure``: ``KERNELWIRE_INSTALL=1 KERNELWIRE_PURE=1``, the pure-Python core.

With ``KERNELWIRE_INSTALL=1`` the start-up hook that ``pip install`` of
kernelwire puts in site-packages switches every Python process the suite
starts (kernels, controllers, engines, nannies, and the forks of those);
``KERNELWIRE_INSTALL_LOG`` (a fresh file per run) records each one.

They run in the minimal environment (``.venv-minimal``: ``pip install -e
".[test-minimal]"``, the environment users get), plus what the three suites
need to run (``PEER_TEST_REQUIREMENTS``), and never cloudpickle, pandas,
matplotlib or msgpack: the script refuses to run if one is importable there.

Counts come from pytest's junit XML, one outcome per test (a test that passes
but errors at teardown counts as an error). The script exits non-zero when, on
either kernelwire core, a suite has a failure or an error, has fewer passes
than on stock, times out, or starts processes of which the install log shows
none switched; and when stock itself fails (then the environment is broken and
no comparison means anything).

Usage::

    python3 scripts/peer_suites.py                      # everything (CI)
    python3 scripts/peer_suites.py --suite ipyparallel --mode kernelwire
    python3 scripts/peer_suites.py --list-excluded

Logs, junit files and install logs go to ``.cache/peer-suites/<time>/``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KERNELWIRE_TEST_CACHE", ROOT / ".cache" / "upstream"))
DEFAULT_VENV = ROOT / ".venv-minimal"
DEFAULT_OUTPUT = ROOT / ".cache" / "peer-suites"

#: never installed in the minimal environment (kernelwire's optional packages)
OPTIONAL_PACKAGES = ("cloudpickle", "pandas", "matplotlib", "msgpack")

#: what the three suites need beyond the test-minimal extra: their own test
#: dependencies (ipyparallel's `test` extra, ipykernel's `test` dependency
#: group, jupyter_client's `test` extra) minus linters, type checkers and msgpack,
#: and the peers pinned to the versions whose suites run.
PEER_TEST_REQUIREMENTS = [
    "ipyparallel==9.2.0",
    "ipykernel==7.4.0",
    "jupyter_client==8.10.0",
    "pytest>=7,<10",
    "pytest-asyncio>=0.23.5",
    "pytest-timeout",  # ipykernel's and jupyter_client's config set `timeout`
    "flaky",  # ipykernel
    "pytest-cov",  # ipykernel: test_subshells reads the --cov option
    "pytest-jupyter[client]>=0.6.2",  # jupyter_client's conftest
    "anyio",  # jupyter_client
    "testpath",  # ipyparallel
    "ipython[test]",  # ipyparallel
    "psutil>=5.7",
]

MODES = {
    "stock": {},
    "kernelwire": {"KERNELWIRE_INSTALL": "1"},
    "pure": {"KERNELWIRE_INSTALL": "1", "KERNELWIRE_PURE": "1"},
}
#: the kernelwire.implementation each mode's switched processes must report
MODE_IMPLEMENTATION = {"kernelwire": "cython", "pure": "pure"}


#: pytest-asyncio >= 0.24 warns at start-up when asyncio_default_fixture_loop_scope
#: is unset, and ipykernel's filterwarnings=error turns that into an internal error;
#: "fixture-scope" is what it does when unset, said explicitly.
KEEP_FIXTURE_LOOP_SCOPE = ["-o", "asyncio_default_fixture_loop_scope=fixture-scope"]


@dataclasses.dataclass
class Suite:
    project: str
    version: str
    sha256: str
    #: pytest's arguments, relative to the extracted sdist
    paths: list[str]
    #: whole files left out (path relative to the sdist -> reason)
    ignore: dict[str, str] = dataclasses.field(default_factory=dict)
    #: single tests left out (node id -> reason)
    deselect: dict[str, str] = dataclasses.field(default_factory=dict)
    #: tests that skip on their own here (what -> reason); listed, not deselected
    self_skipping: dict[str, str] = dataclasses.field(default_factory=dict)
    #: wall-clock limit of one run of the whole suite, seconds
    timeout: float = 900
    extra_args: list[str] = dataclasses.field(default_factory=list)

    @property
    def sdist(self) -> str:
        return f"{self.project.replace('-', '_')}-{self.version}.tar.gz"


SUITES = {
    "ipyparallel": Suite(
        "ipyparallel", "9.2.0",
        "2b31bb4e94708e7ffb4ee6501d7f5f664df7e1c4c572e91e9e0d12484c6a6910",
        ["ipyparallel/tests"],
        ignore={
            "ipyparallel/tests/test_ssh.py": "needs an SSH server (upstream CI: docker compose)",
            "ipyparallel/tests/test_mpi.py": "needs MPI (mpiexec, mpi4py)",
            "ipyparallel/tests/test_slurm.py": "needs a Slurm cluster",
            "ipyparallel/tests/test_mongodb.py": "needs a MongoDB server (and pymongo)",
        },
        self_skipping={
            "test_shellcmd.py::test_shellcmds[*ssh*]":
                "needs the SSH service of upstream's docker compose; skipped by its fixture",
            "test_label.py mongoDB launcher": "needs MongoDB; skipped by its fixture",
            "test_view.py pandas, matplotlib and cloudpickle tests":
                "optional packages kept out of the minimal environment; skip themselves",
            "test_magics.py::test_px_matplotlib": "needs matplotlib; skips itself",
            "test_joblib.py": "needs joblib (not a test dependency); skips itself",
        },
        timeout=20 * 60,
        # ipyparallel sets no per-test limit: one hung cluster must not eat the suite's
        extra_args=["--timeout=300", *KEEP_FIXTURE_LOOP_SCOPE],
    ),
    "ipykernel": Suite(
        "ipykernel", "7.4.0",
        "4330114d22b9b33575b2c7c68753fc8faabbbcfbc60b0cdff9f14dd4ce63742f",
        ["tests"],
        self_skipping={
            "test_matplotlib_eventloops.py, matplotlib tests of test_kernel.py and"
            " inprocess/test_kernel.py": "need matplotlib; skip themselves",
        },
        timeout=15 * 60,
        extra_args=KEEP_FIXTURE_LOOP_SCOPE,
    ),
    "jupyter_client": Suite(
        "jupyter_client", "8.10.0",
        "9f7116294dca55f1785be880057d44544db9b1567718d92cb33c58886afb9497",
        ["tests"],
        self_skipping={
            "test_session.py msgpack cases": "need msgpack; left out or skipped by the file itself",
        },
        timeout=10 * 60,
        # jupyter_client's tests run their coroutines with pytest-jupyter and its test
        # dependencies have no pytest-asyncio; the test-minimal extra does
        extra_args=["-p", "no:asyncio"],
    ),
}


# -- fetching -------------------------------------------------------------------


def fetch_sdist(suite: Suite) -> Path:
    """The suite's sdist in the cache, downloaded from the package index and hash-checked.

    ``pip download --no-binary`` would prepare metadata (for ipyparallel: build
    its JupyterLab extension); the archive is all that is needed.
    """
    target = CACHE / suite.sdist
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == suite.sha256:
        return target
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    page_url = f"{index}/{suite.project.replace('_', '-')}/"
    print(f"fetching {suite.sdist} from {page_url}", flush=True)
    page = urllib.request.urlopen(page_url, timeout=60).read().decode()
    match = re.search(rf'href="([^"#]*{re.escape(suite.sdist)})[#"]', page)
    if match is None:
        raise SystemExit(f"{suite.sdist} not found on {page_url}")
    url = urllib.parse.urljoin(page_url, match.group(1))
    data = urllib.request.urlopen(url, timeout=300).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != suite.sha256:
        raise SystemExit(f"{suite.sdist}: sha256 {digest}, expected {suite.sha256}")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def extract(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):  # 3.12, and 3.10.12 / 3.11.4 on
            tar.extractall(into, filter="data")
        else:
            for member in tar.getmembers():
                if member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise SystemExit(f"{sdist.name}: unsafe member {member.name}")
            tar.extractall(into)
    (top,) = [p for p in into.iterdir() if p.is_dir()]
    return top


# -- the environment --------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def prepare_venv(venv: Path, install: bool) -> None:
    python = venv_python(venv)
    if not python.exists():
        # the same commands as .ci/run's minimal-install step
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test-minimal]"])
    if install:
        run([str(python), "-m", "pip", "install", "-q", *PEER_TEST_REQUIREMENTS])
    check_minimal(python)


def check_minimal(python: Path) -> None:
    code = (
        "import importlib.util, sys;"
        f"found = [m for m in {OPTIONAL_PACKAGES!r} if importlib.util.find_spec(m)];"
        "print(' '.join(found))"
    )
    found = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    if found:
        raise SystemExit(f"{python}: the minimal environment has {', '.join(found)};"
                         f" none of {', '.join(OPTIONAL_PACKAGES)} may be installed")
    code = "import kernelwire, sys; sys.stdout.write(kernelwire.implementation)"
    impl = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True).stdout
    if impl != "cython":
        raise SystemExit(f"{python}: kernelwire.implementation is {impl!r}, not 'cython'")


def run(cmd: list[str], **kwargs) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


# -- leftover processes ------------------------------------------------------------

MARKER = "KERNELWIRE_PEER_SUITE_RUN"


def processes_with_marker(token: str) -> list[int]:
    """pids of the processes whose environment carries this run's token (Linux /proc)."""
    needle = f"{MARKER}={token}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_leftovers(token: str) -> int:
    """Stop every process this run started that is still alive (controllers, engines, kernels)."""
    if not Path("/proc").is_dir():
        return 0
    pids = processes_with_marker(token)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and processes_with_marker(token):
            time.sleep(0.2)
        if not processes_with_marker(token):
            break
    return len(pids)


# -- one run -----------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    suite: str
    mode: str
    outcomes: dict[str, str]  # test id -> passed / failed / error / skipped
    seconds: float
    returncode: int | None  # None: timed out
    switched: list[dict]  # install-log records of processes other than pytest itself
    wrong_impl: list[dict]
    log: Path
    flaky: list[str] = dataclasses.field(default_factory=list)  # passed only when rerun

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


#: more failures than this are not rerun (they are not flakes)
MAX_RERUN = 10
RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def parse_junit(path: Path) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    if not path.exists():
        return outcomes
    for case in ET.parse(path).iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        tags = {child.tag for child in case}
        if "error" in tags:
            outcome = "error"
        elif "failure" in tags:
            outcome = "failed"
        elif "skipped" in tags:
            outcome = "skipped"
        else:
            outcome = "passed"
        previous = outcomes.get(test_id)
        if previous is None or RANK[outcome] > RANK[previous]:
            outcomes[test_id] = outcome
    return outcomes


def node_id(test_id: str, source: Path) -> str | None:
    """pytest's node id for a junit ``classname::name`` (None for doctests and the like)."""
    classname, _, name = test_id.partition("::")
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        if (source / Path(*parts[:i])).with_suffix(".py").is_file():
            return "::".join(["/".join(parts[:i]) + ".py", *parts[i:], name])
    return None


def run_pytest(cmd: list[str], source: Path, env: dict, log: Path, timeout: float,
               ) -> tuple[int | None, int]:
    """Run one pytest; its exit status (None: timed out) and pid."""
    with log.open("a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=source, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            return proc.wait(timeout=timeout), proc.pid
        except subprocess.TimeoutExpired:
            # SIGINT first: pytest stops and still writes its junit file
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return None, proc.pid


def run_suite(name: str, mode: str, python: Path, output: Path, keep: bool,
              reruns: int) -> Result:
    suite = SUITES[name]
    sdist = fetch_sdist(suite)
    work = Path(tempfile.mkdtemp(prefix=f"kw-peer-{name}-{mode}-"))
    source = extract(sdist, work)
    stem = output / f"{name}-{mode}"
    junit, log, install_log = (Path(f"{stem}.{ext}") for ext in ("xml", "log", "install.jsonl"))
    for path in (*output.glob(f"{stem.name}.rerun*.xml"), junit, log, install_log):
        path.unlink(missing_ok=True)
    install_log.touch()

    token = secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KERNELWIRE_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(MODES[mode])
    env["KERNELWIRE_INSTALL_LOG"] = str(install_log)
    env[MARKER] = token
    env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    env["PYTHONUNBUFFERED"] = "1"
    base = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "--color=no",
            *suite.extra_args]
    cmd = [*base, *suite.paths, f"--junitxml={junit}"]
    cmd += [f"--ignore={path}" for path in suite.ignore]
    cmd += [f"--deselect={node}" for node in suite.deselect]

    print(f"--- {name} [{mode}] in {source}", flush=True)
    start = time.monotonic()
    returncode, pid = run_pytest(cmd, source, env, log, suite.timeout)
    pytest_pids = {pid}
    leftovers = kill_leftovers(token)
    outcomes = parse_junit(junit)
    # A test that fails alone among many (a timing assertion on a loaded 2-core
    # machine) runs once more by itself; one that passes then is listed as flaky.
    flaky: list[str] = []
    for attempt in range(1, reruns + 1):
        bad = {t: node_id(t, source) for t, o in outcomes.items() if o in ("failed", "error")}
        if returncode is None or not bad or len(bad) > MAX_RERUN or None in bad.values():
            break
        rerun_junit = Path(f"{stem}.rerun{attempt}.xml")
        print(f"    rerunning {len(bad)} failed test(s) once more", flush=True)
        rc, pid = run_pytest([*base, *bad.values(), f"--junitxml={rerun_junit}"], source, env,
                             log, 120 + 60 * len(bad))
        pytest_pids.add(pid)
        leftovers += kill_leftovers(token)
        again = parse_junit(rerun_junit)
        for test_id in bad:
            if again.get(test_id) == "passed":
                outcomes[test_id] = "passed"
                flaky.append(test_id)
    seconds = time.monotonic() - start
    if leftovers:
        with log.open("a") as out:
            out.write(f"\n[peer_suites] killed {leftovers} leftover process(es)\n")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)

    records = [json.loads(line) for line in install_log.read_text().splitlines() if line.strip()]
    switched = [r for r in records if r["pid"] not in pytest_pids]
    expected = MODE_IMPLEMENTATION.get(mode)
    wrong = [r for r in records if expected is None or r.get("implementation") != expected]
    return Result(name, mode, outcomes, seconds, returncode, switched, wrong, log, flaky)


# -- the report ----------------------------------------------------------------------

INTERPRETER_FLAGS_WITH_VALUE = {"-W", "-X", "-Q"}


def process_kind(record: dict) -> str:
    argv = list(record.get("argv") or [])
    if argv and "python" in Path(argv[0]).name:
        argv = argv[1:]
    while argv and argv[0].startswith("-") and argv[0] not in ("-m", "-c"):
        flag = argv.pop(0)
        if flag in INTERPRETER_FLAGS_WITH_VALUE and argv:
            argv.pop(0)
    if not argv:
        kind = "python"
    elif argv[0] == "-m" and len(argv) > 1:
        kind = argv[1]
    elif argv[0] == "-c":
        kind = "-c"
    else:
        kind = Path(argv[0]).name
    kind = {
        "ipyparallel.controller": "ipcontroller",
        "ipyparallel.engine": "ipengine",
        "ipyparallel.engine.nanny": "nanny",
        "ipykernel_launcher": "kernel",
        "ipykernel": "kernel",
    }.get(kind, kind)
    return f"{kind} (fork)" if record.get("forked") else kind


def kinds_summary(records: list[dict]) -> str:
    counts = collections.Counter(process_kind(r) for r in records)
    return ", ".join(f"{kind} {n}" for kind, n in counts.most_common()) or "-"


def fmt_seconds(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def report(results: list[Result], output: Path) -> list[str]:
    """Print the table and the differences; return the reasons to fail."""
    problems: list[str] = []
    by_key = {(r.suite, r.mode): r for r in results}
    header = (f"{'suite':<15} {'mode':<11} {'passed':>6} {'failed':>6} {'errors':>6} "
              f"{'skipped':>7} {'time':>7}  switched  kinds")
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        status = "" if r.returncode is not None else "  TIMED OUT"
        print(f"{r.suite:<15} {r.mode:<11} {r.count('passed'):>6} {r.count('failed'):>6} "
              f"{r.count('error'):>6} {r.count('skipped'):>7} {fmt_seconds(r.seconds):>7}  "
              f"{len(r.switched):>8}  {kinds_summary(r.switched)}{status}")
    print()
    for r in results:
        where = f"{r.suite} [{r.mode}]"
        if r.flaky:
            print(f"{where}: failed, then passed when rerun alone (flaky): {', '.join(r.flaky)}")
        if r.returncode is None:
            problems.append(f"{where}: timed out after {fmt_seconds(r.seconds)} (log: {r.log})")
        elif not r.outcomes:
            problems.append(f"{where}: no test results (pytest exit {r.returncode}; log: {r.log})")
        bad = [t for t, o in r.outcomes.items() if o in ("failed", "error")]
        if r.mode == "stock":
            if bad:
                problems.append(f"{where}: {len(bad)} failed/errors on stock, the environment"
                                f" is broken: {', '.join(bad[:10])}")
            if r.switched:
                problems.append(f"{where}: {len(r.switched)} processes switched to kernelwire"
                                " without KERNELWIRE_INSTALL")
            continue
        if bad:
            problems.append(f"{where}: {r.count('failed')} failed, {r.count('error')} errors")
        if not r.switched:
            problems.append(f"{where}: the install log shows no process the suite started"
                            " switched to kernelwire")
        if r.wrong_impl:
            impls = collections.Counter(rec.get("implementation") for rec in r.wrong_impl)
            problems.append(f"{where}: processes on the wrong core: {dict(impls)}")
        stock = by_key.get((r.suite, "stock"))
        if stock is None:
            print(f"{where}: no stock run in this invocation to compare with")
            continue
        if r.count("passed") < stock.count("passed"):
            problems.append(f"{where}: {r.count('passed')} passed, fewer than stock's"
                            f" {stock.count('passed')}")
        lost = sorted(t for t, o in stock.outcomes.items()
                      if o == "passed" and r.outcomes.get(t) != "passed")
        if lost:
            listing = output / f"{r.suite}-{r.mode}.lost.txt"
            listing.write_text("".join(f"{t} {r.outcomes.get(t, 'missing')}\n" for t in lost))
            print(f"{where}: {len(lost)} tests pass on stock but not here (all in {listing}):")
            for t in lost[:40]:
                print(f"    {t}  [{r.outcomes.get(t, 'missing')}]")
            if len(lost) > 40:
                print(f"    ... and {len(lost) - 40} more")
    return problems


def pause_while(path: Path, limit: float = 15 * 60) -> None:
    deadline = time.monotonic() + limit
    if path.exists():
        print(f"waiting while {path} exists", flush=True)
    while path.exists() and time.monotonic() < deadline:
        time.sleep(30)


def list_excluded() -> None:
    for name, suite in SUITES.items():
        print(f"{name} {suite.version}:")
        for what, reason in {**suite.ignore, **suite.deselect}.items():
            print(f"  left out   {what}: {reason}")
        for what, reason in suite.self_skipping.items():
            print(f"  skips here {what}: {reason}")
    print(f"never installed: {', '.join(OPTIONAL_PACKAGES)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", action="append", choices=list(SUITES),
                        help="run only this suite (repeatable; default: all)")
    parser.add_argument("--mode", action="append", choices=list(MODES),
                        help="run only this mode (repeatable; default: all)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help="the minimal venv (created as .ci/run does if missing)")
    parser.add_argument("--no-install", action="store_true",
                        help="do not pip install the suites' test requirements")
    parser.add_argument("--output", type=Path, help="directory for logs and junit files")
    parser.add_argument("--reruns", type=int, default=1,
                        help=f"rerun up to {MAX_RERUN} failed tests of a run by themselves this"
                        " many times; those that pass then count as passed and are listed"
                        " as flaky (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the extracted sdists")
    parser.add_argument("--pause-while", type=Path, metavar="FILE",
                        help="before each run, wait (up to 15 minutes) while FILE exists,"
                        " e.g. a benchmark's lock file on a shared machine")
    parser.add_argument("--list-excluded", action="store_true",
                        help="print what is left out or skips here, and why")
    args = parser.parse_args(argv)
    if args.list_excluded:
        list_excluded()
        return 0
    suites = args.suite or list(SUITES)
    modes = args.mode or list(MODES)
    output = args.output or DEFAULT_OUTPUT / time.strftime("%Y%m%d-%H%M%S")
    output.mkdir(parents=True, exist_ok=True)
    venv = args.venv.resolve()
    prepare_venv(venv, install=not args.no_install)
    python = venv_python(venv)
    list_excluded()
    start = time.monotonic()
    results = []
    for name in suites:
        for mode in modes:
            if args.pause_while is not None:
                pause_while(args.pause_while)
            results.append(run_suite(name, mode, python, output, args.keep, args.reruns))
    problems = report(results, output)
    print(f"total {fmt_seconds(time.monotonic() - start)}; logs in {output}")
    if problems:
        print("\nFAILED:\n" + "\n".join(f"  - {p}" for p in problems))
        return 1
    print(f"\nOK: {len(results)} run(s) clean;"
          " on kernelwire no fewer passes than stock where both ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
