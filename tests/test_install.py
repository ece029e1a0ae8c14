"""kernelwire.install()/uninstall(), the KERNELWIRE_INSTALL start-up hook and the kernelspec."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
from jupyter_client import session as jc_session

import kernelwire
from kernelwire.install import is_installed, original_session_class

# Modules that copy Session at import (design notes, section 4) and how they
# spell it; all must follow install().
COPIERS = [
    "ipykernel.kernelbase",
    "ipykernel.kernelapp",
    "ipykernel.zmqshell",
    "ipykernel.displayhook",
    "ipyparallel.apps.baseapp",
    "ipyparallel.client.client",
    "ipyparallel.controller.hub",
    "ipyparallel.controller.heartmonitor",
    "ipyparallel.controller.app",
    "ipyparallel.engine.app",
    "ipyparallel.engine.nanny",
    "ipyparallel.engine.datapub",
    "jupyter_client.client",
    "jupyter_server.services.kernels.kernelmanager",
    "jupyter_server.services.kernels.connection.base",
]


@pytest.fixture
def installed():
    assert not is_installed()
    kernelwire.install()
    yield
    kernelwire.uninstall()


@pytest.fixture(scope="module")
def stock():
    return jc_session.Session


def test_install_rebinds_the_class_everywhere(stock, installed):
    assert jc_session.Session is kernelwire.Session
    for name in COPIERS:
        assert importlib.import_module(name).Session is kernelwire.Session, name
    assert original_session_class() is stock


def test_later_sessions_are_kernelwire(installed):
    from ipyparallel.controller.scheduler import Scheduler
    from jupyter_client import KernelManager
    from jupyter_client.session import SessionFactory

    assert type(KernelManager().session) is kernelwire.Session
    assert type(SessionFactory().session) is kernelwire.Session
    assert type(Scheduler(client_stream=None, mon_stream=None).session) is kernelwire.Session


def test_traits_still_accept_stock_sessions(stock, installed):
    from jupyter_client import KernelManager

    # the "jupyter_client.session.Session" string must not come to mean kernelwire's class
    manager = KernelManager(session=stock())
    assert type(manager.session) is stock


def test_install_is_idempotent_and_uninstall_restores(stock):
    kernelwire.install()
    kernelwire.install()
    assert jc_session.Session is kernelwire.Session
    kernelwire.uninstall()
    assert jc_session.Session is stock
    for name in COPIERS:
        assert importlib.import_module(name).Session is stock, name
    kernelwire.uninstall()  # a second uninstall is a no-op
    assert jc_session.Session is stock
    from jupyter_client import KernelManager

    assert type(KernelManager().session) is stock


def test_wire_compatible_across_install(stock, installed):
    # a kernelwire Session made through the patched name talks to a stock one
    key = b"shared-key"
    sender, receiver = jc_session.Session(key=key), stock(key=key)
    frames = sender.serialize(sender.msg("execute_request", {"code": "1"}))
    idents, rest = receiver.feed_identities(frames)
    assert receiver.deserialize(rest)["content"] == {"code": "1"}


def _run(code: str, install_variable: str | None, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERNELWIRE_INSTALL")}
    if install_variable is not None:
        env["KERNELWIRE_INSTALL"] = install_variable
    env["KERNELWIRE_INSTALL_LOG"] = str(tmp_path / "install.log")
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


PROBE = """
    import json, sys
    loaded_at_start = "jupyter_client" in sys.modules or "kernelwire" in sys.modules
    from ipykernel import kernelbase
    from jupyter_client.session import Session
    print(json.dumps({
        "loaded_at_start": loaded_at_start,
        "kernelbase": kernelbase.Session.__module__,
        "session": Session.__module__,
    }))
"""


def test_startup_hook_installs_lazily(tmp_path):
    result = _run(PROBE, "1", tmp_path)
    # nothing heavy is imported at start-up: the hook waits for jupyter_client
    assert result == {
        "loaded_at_start": False,
        "kernelbase": "kernelwire.session",
        "session": "kernelwire.session",
    }
    (record,) = [json.loads(line) for line in (tmp_path / "install.log").read_text().splitlines()]
    assert record["implementation"] == kernelwire.implementation


def test_startup_hook_when_kernelwire_is_imported_first(tmp_path):
    # kernelwire's own import pulls in jupyter_client.session half-way through
    code = "import kernelwire\n" + textwrap.dedent(PROBE)
    result = _run(code, "1", tmp_path)
    assert result["kernelbase"] == result["session"] == "kernelwire.session"
    assert len((tmp_path / "install.log").read_text().splitlines()) == 1


@pytest.mark.parametrize("value", [None, "0", ""])
def test_startup_hook_off(tmp_path, value):
    result = _run(PROBE, value, tmp_path)
    assert result["kernelbase"] == result["session"] == "jupyter_client.session"
    assert not (tmp_path / "install.log").exists()


def test_install_kernelspec(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "kernelwire", "install-kernelspec", "--prefix", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    from jupyter_client.kernelspec import KernelSpecManager

    manager = KernelSpecManager(kernel_dirs=[str(tmp_path / "share" / "jupyter" / "kernels")])
    spec = manager.get_kernel_spec("kernelwire")
    assert spec.display_name == "Python 3 (kernelwire)"
    assert spec.argv == [sys.executable, "-m", "kernelwire.kernel", "-f", "{connection_file}"]
    assert spec.language == "python"
