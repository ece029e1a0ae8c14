"""ipyparallel 9.2.0's own tests/test_serialize.py, unchanged and whole, against kernelwire's.

Its tests unpickle frame 0 and check IPython Parallel's canning of it
(``CannedArray`` in sequences and dicts, ``CannedClass``, bare tuples, lists
and namedtuples): kernelwire's frame 0 has that layout, so nothing is left out.
"""

import hashlib
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from _upstream import CACHE, upstream_file

IPYPARALLEL_VERSION = "9.2.0"
SDIST = f"ipyparallel-{IPYPARALLEL_VERSION}.tar.gz"
SDIST_SHA256 = "2b31bb4e94708e7ffb4ee6501d7f5f664df7e1c4c572e91e9e0d12484c6a6910"
UPSTREAM_TEST_COUNT = 15


def _fetch_sdist() -> None:
    """Put the sdist in upstream_file's cache.

    ``pip download --no-binary`` prepares metadata, which for ipyparallel
    means building its JupyterLab extension; the archive itself is all we
    need, so it comes from the package index pip uses, checked by hash.
    """
    target = CACHE / SDIST
    if target.exists():
        return
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    project_page = f"{index}/ipyparallel/"
    page = urllib.request.urlopen(project_page, timeout=60).read().decode()
    url = re.search(rf'href="([^"#]*{re.escape(SDIST)})[#"]', page).group(1)
    data = urllib.request.urlopen(urllib.parse.urljoin(project_page, url), timeout=120).read()
    assert hashlib.sha256(data).hexdigest() == SDIST_SHA256, "ipyparallel sdist hash mismatch"
    CACHE.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_ipyparallel_test_serialize_passes(tmp_path):
    _fetch_sdist()
    member = "ipyparallel/tests/test_serialize.py"
    test_file = upstream_file("ipyparallel", IPYPARALLEL_VERSION, member)
    here = Path(__file__).resolve().parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(here), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable, "-m", "pytest", str(test_file), "-p", "ipp_serialize_rebind_plugin",
        "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull,
        "-W", "error:::ipy*", "-W", "error:::jupyter*",
        "-o", "asyncio_default_fixture_loop_scope=function",
    ]
    result = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    bound = "ipyparallel.serialize.serialize_object -> kernelwire.serialize.serialize_object (True)"
    assert bound in out, out
    assert result.returncode == 0, out
    passed = int(re.search(r"(\d+) passed", out).group(1))
    last = out.strip().splitlines()[-1]
    assert not re.search(r"failed|error|skipped|xfail|deselected", last), last
    assert passed == UPSTREAM_TEST_COUNT, out
    print(f"ipyparallel test_serialize.py on kernelwire: {passed} passed")
