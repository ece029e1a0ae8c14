"""IPython Parallel clusters on kernelwire.

Every cluster process builds its own Session (controller and Hub, the
schedulers and heartbeat monitor it forks, engines, the nanny each engine
spawns, the client), and ipyparallel has no setting that picks the class.
Two ways switch them:

- ``kernelwire.ipp.Cluster(n=4)``: an ``ipyparallel.Cluster`` whose launchers
  pass ``KERNELWIRE_INSTALL=1`` to the controller and the engines (the
  start-up hook then installs kernelwire in each; forked schedulers and the
  nanny inherit it) and which installs kernelwire in the client's process.
  ``kernelwire_controller=False`` / ``kernelwire_engines=False`` make that
  part stock (``KERNELWIRE_INSTALL=0``): mixed clusters interoperate.
- ``Cluster(shared_memory=True)``: buffers of ``shared_memory_threshold``
  bytes or more (1 MiB by default) travel between the client, the Hub and
  the local engines through shared memory (see kernelwire/_shm.py).  Every
  process it starts runs with ``shared_memory_peers="known"``: a process
  uses shared memory only towards peers whose own signed messages said they
  run kernelwire with it on, on this host, so a stock engine or one on
  another host still gets frames.  The client learns its engines from their
  first reply; ``start_and_connect`` makes that reply happen.
- ``ipcluster start``: export ``KERNELWIRE_INSTALL=1``, or point the launchers
  at the wrappers below in ``ipcluster_config.py``, which install kernelwire
  and then run ipyparallel's own entry points::

      c.LocalControllerLauncher.controller_cmd = [sys.executable, "-m", "kernelwire.ipp", "controller"]
      c.LocalEngineSetLauncher.engine_cmd = [sys.executable, "-m", "kernelwire.ipp", "engine"]
"""  # noqa: E501 - the config lines are meant to be copied whole

from __future__ import annotations

import asyncio
import functools
import os
import sys
from typing import Any

import ipyparallel as ipp
from traitlets import Bool, Integer
from traitlets.config import Config

from .install import install
from .session import PEERS_VARIABLE, THRESHOLD_VARIABLE

INSTALL_VARIABLE = "KERNELWIRE_INSTALL"


class Cluster(ipp.Cluster):
    """``ipyparallel.Cluster`` whose controller, engines and client run on kernelwire."""

    kernelwire_controller = Bool(
        True, config=True, help="Run the controller, Hub, schedulers and heartbeat on kernelwire."
    )
    kernelwire_engines = Bool(True, config=True, help="Run the engines and nannies on kernelwire.")
    kernelwire_client = Bool(
        True, config=True, help="Install kernelwire in this process, where the Client runs."
    )

    shared_memory = Bool(
        False,
        config=True,
        help="Send big buffers between the client, the controller and local kernelwire"
        " engines through shared memory instead of sockets (Linux).",
    )
    shared_memory_threshold = Integer(
        1 << 20, config=True, help="Buffers of at least this many bytes use shared memory."
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.shared_memory and not self.kernelwire_controller:
            # the Hub records every buffer it sees (rc.get_result, resubmit): a stock one
            # would record the empty placeholder frames
            raise ValueError("shared_memory=True needs kernelwire_controller=True")
        if self.kernelwire_client:
            install()
        if self.shared_memory:
            batch_direct_views()

    async def connect_client(self, **client_kwargs: Any) -> Any:
        client = await super().connect_client(**client_kwargs)
        if self.shared_memory and self.kernelwire_client:
            client.session.shared_memory_peers = "known"
            client.session.shared_memory_threshold = self.shared_memory_threshold
        return client

    async def start_and_connect(self, n: int | None = None, activate: bool = False) -> Any:
        client = await super().start_and_connect(n, activate)
        if self.shared_memory and self.kernelwire_client and client.ids:
            # one reply from each engine tells the client which ones map shared memory
            await asyncio.wrap_future(client[:].apply_async(int))
        return client

    async def start_controller(self, **kwargs: Any) -> None:
        kwargs["environment"] = self._environment(
            self.controller_launcher_class, kwargs.get("environment"), self.kernelwire_controller
        )
        return await super().start_controller(**kwargs)

    async def start_engines(
        self, n: int | None = None, engine_set_id: str | None = None, **kwargs: Any
    ) -> str:
        kwargs["environment"] = self._environment(
            self.engine_launcher_class, kwargs.get("environment"), self.kernelwire_engines
        )
        return await super().start_engines(n, engine_set_id, **kwargs)

    def _environment(
        self, launcher_class: type, given: dict[str, str] | None, use_kernelwire: bool
    ) -> dict[str, str]:
        # an ``environment`` keyword replaces the configured one: merge them first
        env = configured_environment(self.config, launcher_class)
        env.update(given or {})
        env[INSTALL_VARIABLE] = "1" if use_kernelwire else "0"
        if self.shared_memory and use_kernelwire:
            env[THRESHOLD_VARIABLE] = str(self.shared_memory_threshold)
            env[PEERS_VARIABLE] = "known"
        return env


_batched = False


def batch_direct_views() -> None:
    """A DirectView call sending one buffer to N engines puts it in one segment, not N."""
    global _batched
    if _batched:
        return
    _batched = True
    from ipyparallel.client.view import DirectView

    original = DirectView._really_apply

    @functools.wraps(original)
    def _really_apply(self: Any, *args: Any, **kwargs: Any) -> Any:
        shm = getattr(self.client.session, "shared_memory", None)
        if shm is None:
            return original(self, *args, **kwargs)
        # the client sends from its IO thread, in order: bracket this call's sends there
        loop = self.client._io_loop
        loop.add_callback(shm.begin_batch)
        try:
            return original(self, *args, **kwargs)
        finally:
            loop.add_callback(shm.end_batch)

    DirectView._really_apply = _really_apply


def configured_environment(config: Config, launcher_class: type) -> dict[str, str]:
    """The ``environment`` config would give a launcher of this class."""
    env: dict[str, str] = {}
    for cls in reversed(launcher_class.mro()):  # subclasses' sections win
        section = cls.__name__
        if section in config and "environment" in config[section]:
            env.update(config[section]["environment"])
    return env


_ENTRY_POINTS = {
    "controller": "ipyparallel.controller.app",
    "engine": "ipyparallel.engine.app",
}


def main(argv: list[str] | None = None) -> None:
    """``python -m kernelwire.ipp controller|engine [args]``: ipyparallel's apps on kernelwire."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in _ENTRY_POINTS:
        sys.exit(f"usage: python -m kernelwire.ipp {{{'|'.join(_ENTRY_POINTS)}}} [args...]")
    os.environ[INSTALL_VARIABLE] = "1"  # the nanny and other children start on kernelwire too
    install()
    import importlib

    app = importlib.import_module(_ENTRY_POINTS[argv[0]])
    sys.argv = [f"{sys.argv[0]} {argv[0]}", *argv[1:]]
    app.main()


if __name__ == "__main__":
    main()
