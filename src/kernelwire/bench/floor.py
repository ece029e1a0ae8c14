"""Build the C floor (floor.c) on the fly, against the libzmq pyzmq loaded.

The program is compiled once into a cache directory (keyed by a hash of the
source, the compiler and the flags) and is told at run time which libzmq
file to dlopen: the exact library this Python process uses.  No zmq.h is
needed and nothing links a second libzmq.  Anything missing (compiler,
dlopen, the library file) makes the floor "not available", with a reason.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class Floor:
    """A built floor program and the libzmq it drives."""

    program: str
    libzmq: str

    def command(self, role: str, endpoint: str, count: int, sizes: list[int]) -> list[str]:
        """The command line that runs one role (see floor.c)."""
        return [self.program, self.libzmq, role, endpoint, str(count), *map(str, sizes)]


class FloorUnavailable(RuntimeError):
    """The floor cannot run here; the message says why."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kernelwire" / "bench"


def find_libzmq() -> str:
    """The file of the libzmq that pyzmq loaded into this process."""
    from zmq.backend.cython import _zmq

    maps = Path("/proc/self/maps")
    if maps.exists():  # Linux: what is actually mapped, whatever its name or place
        for line in maps.read_text().splitlines():
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if os.path.basename(path).startswith("libzmq"):
                return path
    import zmq

    package_dir = os.path.dirname(zmq.__file__)
    patterns = [
        os.path.join(os.path.dirname(package_dir), "pyzmq.libs", "libzmq*.so*"),  # Linux wheels
        os.path.join(package_dir, ".dylibs", "libzmq*.dylib"),  # macOS wheels
    ]
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    # libzmq linked statically into the extension: dlsym finds it there
    return _zmq.__file__


def _compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate) or candidate
    raise FloorUnavailable("no C compiler found (set CC)")


def _defines() -> list[str]:
    """libzmq's constants as pyzmq knows them, so floor.c needs no header."""
    import zmq

    names = ("PUSH", "PULL", "DEALER", "ROUTER", "SNDMORE", "LAST_ENDPOINT")
    flags = [f"-DKW_{name}={int(getattr(zmq, name))}" for name in names]
    flags.append(f"-DKW_COPY_THRESHOLD={int(zmq.COPY_THRESHOLD)}")
    return flags


def build(cache_dir: Path | None = None) -> Floor:
    """Compile floor.c (or reuse the cached build) and check it loads libzmq."""
    if sys.platform == "win32":
        raise FloorUnavailable("the floor needs dlopen (Linux/macOS)")
    source = resources.files("kernelwire.bench").joinpath("floor.c").read_bytes()
    compiler = _compiler()
    flags = ["-O2", *_defines()]
    libs = ["-ldl"] if sys.platform.startswith("linux") else []
    key = hashlib.sha256(repr((source, compiler, flags, libs)).encode()).hexdigest()[:16]
    cache_dir = cache_dir or default_cache_dir()
    program = cache_dir / f"floor-{key}"
    if not program.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        src = cache_dir / f"floor-{key}.c"
        src.write_bytes(source)
        tmp = cache_dir / f"floor-{key}.{os.getpid()}.tmp"
        proc = subprocess.run(
            [compiler, *flags, "-o", str(tmp), str(src), *libs],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise FloorUnavailable(f"compiling floor.c failed: {proc.stderr.strip()[:300]}")
        os.replace(tmp, program)  # atomic: concurrent runs never see half a binary
    floor = Floor(str(program), find_libzmq())
    check = subprocess.run(floor.command("check", "", 0, [])[:3], capture_output=True, text=True)
    reply = check.stdout.strip().splitlines()[-1:] or ["{}"]
    if check.returncode != 0 or not json.loads(reply[0]).get("ok"):
        raise FloorUnavailable(f"floor cannot load {floor.libzmq}: {check.stdout.strip()}")
    return floor
