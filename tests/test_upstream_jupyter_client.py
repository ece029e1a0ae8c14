"""jupyter_client 8.10.0's own tests/test_session.py, unchanged, against kernelwire.Session."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _upstream import upstream_file
from conftest import IMPLEMENTATIONS

JUPYTER_CLIENT_VERSION = "8.10.0"
UPSTREAM_TEST_COUNT = 54
# Without msgpack (an optional package, absent from the test-minimal extra) the
# file leaves its 7 msgpack-packer cases out and skips test_datetimes_msgpack.
HAS_MSGPACK = importlib.util.find_spec("msgpack") is not None
EXPECTED_PASSED = UPSTREAM_TEST_COUNT if HAS_MSGPACK else UPSTREAM_TEST_COUNT - 8
EXPECTED_SKIPS = [] if HAS_MSGPACK else ["msgpack"]
# jupyter_client's own pytest settings for this file (its pyproject.toml).
UPSTREAM_WARNING_FILTERS = [
    "error",
    "ignore:datetime.datetime.utcfromtimestamp:DeprecationWarning",
    "ignore:datetime.datetime.utcnow:DeprecationWarning",
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_jupyter_client_test_session_passes(impl, tmp_path):
    test_file = upstream_file("jupyter_client", JUPYTER_CLIENT_VERSION, "tests/test_session.py")
    here = Path(__file__).resolve().parent
    env = dict(os.environ, KERNELWIRE_TEST_IMPL=impl)
    env["PYTHONPATH"] = os.pathsep.join([str(here), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable, "-m", "pytest", str(test_file), "-p", "jc_rebind_plugin",
        "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull, "-rs",
        "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
    ]
    for f in UPSTREAM_WARNING_FILTERS:
        cmd += ["-W", f]
    result = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    # the plugin's report header proves which class the file ran against
    assert "jupyter_client.session.Session -> " in out and f"({impl})" in out, out
    assert result.returncode == 0, out
    summary = re.search(r"(\d+) passed", out)
    assert summary, out
    passed = int(summary.group(1))
    last = out.strip().splitlines()[-1]
    assert not re.search(r"failed|error|xfail", last), last
    skips = re.findall(r"^SKIPPED \[\d+\] .*$", out, re.MULTILINE)
    assert len(skips) == len(EXPECTED_SKIPS), out
    assert all(what in skip for what, skip in zip(EXPECTED_SKIPS, skips, strict=True)), skips
    # 8.10.0's file collects 54 tests; fewer means something was not run.
    assert passed == EXPECTED_PASSED, out
    print(f"jupyter_client test_session.py against kernelwire ({impl}): {passed} passed")
