"""Where a run happened: machine, operating system, Python and package versions."""

from __future__ import annotations

import os
import platform
import sys
import typing as t
from importlib import metadata

PACKAGES = ("kernelwire", "jupyter_client", "pyzmq", "orjson", "numpy", "ipyparallel")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe() -> dict[str, t.Any]:
    import zmq

    import kernelwire

    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": {p: v for p in PACKAGES if (v := _version(p))},
        "libzmq": zmq.zmq_version(),
        "kernelwire_default_core": kernelwire.implementation,
    }


def one_line(env: dict[str, t.Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    return (
        f"{env['cpu']} ({env['cpus']} CPUs), {env['os']}, {env['python']}; "
        f"{packages}, libzmq {env['libzmq']}"
    )
