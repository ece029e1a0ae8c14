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
- ``ipcluster start``: export ``KERNELWIRE_INSTALL=1``, or point the launchers
  at the wrappers below in ``ipcluster_config.py``, which install kernelwire
  and then run ipyparallel's own entry points::

      c.LocalControllerLauncher.controller_cmd = [sys.executable, "-m", "kernelwire.ipp", "controller"]
      c.LocalEngineSetLauncher.engine_cmd = [sys.executable, "-m", "kernelwire.ipp", "engine"]
"""  # noqa: E501 - the config lines are meant to be copied whole

from __future__ import annotations

import os
import sys
from typing import Any

import ipyparallel as ipp
from traitlets import Bool
from traitlets.config import Config

from .install import install

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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.kernelwire_client:
            install()

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
        return env


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
