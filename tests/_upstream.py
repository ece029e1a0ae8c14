"""Fetch test files from upstream sdists at test time (never committed).

The sdist is downloaded once with pip into a cache directory
(``KERNELWIRE_TEST_CACHE``, default ``.cache/upstream`` in the repo) and the
wanted member is extracted next to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KERNELWIRE_TEST_CACHE", REPO / ".cache" / "upstream"))


def upstream_file(project: str, version: str, member: str) -> Path:
    """Path to ``member`` (e.g. ``tests/test_session.py``) of ``project==version``'s sdist."""
    target = CACHE / f"{project}-{version}" / member
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = next(CACHE.glob(f"{project.replace('-', '_')}-{version}.tar.gz"), None)
    if sdist is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", "--dest", str(CACHE), f"{project}=={version}"],
            check=True,
        )
        sdist = next(CACHE.glob(f"{project.replace('-', '_')}-{version}.tar.gz"))
    with tarfile.open(sdist) as tar:
        name = f"{sdist.name[: -len('.tar.gz')]}/{member}"
        data = tar.extractfile(name).read()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target
