"""Build the compiled core from _ext/ into the kernelwire package.

The extension is optional: with KERNELWIRE_PURE=1, without Cython, or when
the compiler fails, the pure-Python package is installed instead.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel


class OptionalBuildExt(build_ext):
    """Build extensions, but fall back to the pure package on failure."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: stay pure
            self._warn(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc):
        print(
            f"kernelwire: compiled core not built ({exc}); installing the pure-Python core",
            file=sys.stderr,
        )


def extensions():
    if os.environ.get("KERNELWIRE_PURE", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        print("kernelwire: Cython not available; installing the pure-Python core", file=sys.stderr)
        return []
    compile_args = [] if sys.platform == "win32" else ["-O3"]
    # dlopen/dlsym live in libdl before glibc 2.34
    link_libs = ["dl"] if sys.platform.startswith("linux") else []

    def compiled(name):
        return Extension(
            f"kernelwire.{name}",
            sources=[f"_ext/{name}.pyx"],
            include_dirs=["_ext"],
            extra_compile_args=compile_args,
            libraries=link_libs,
        )

    # _ccore: the per-message work; _zmqio: send/recv on pyzmq's own libzmq,
    # looked up at import (no zmq.h, no -lzmq)
    return cythonize(
        [compiled("_ccore"), compiled("_zmqio")],
        # bounds checks stay on: the core reads untrusted messages
        compiler_directives={"language_level": 3},
    )


STARTUP_PTH = "src/kernelwire-startup.pth"  # KERNELWIRE_INSTALL=1 hook, see README


class BuildPyWithStartupPth(build_py):
    """Put the start-up .pth at the wheel's root, i.e. into site-packages."""

    def run(self):
        super().run()
        self.copy_file(STARTUP_PTH, os.path.join(self.build_lib, os.path.basename(STARTUP_PTH)))


class EditableWheelWithStartupPth(editable_wheel):
    """``pip install -e .`` builds its wheel here, without build_py's copies."""

    def _install_namespaces(self, installation_dir, pth_prefix):
        # the one hook (setuptools>=64) that writes into the wheel being built
        super()._install_namespaces(installation_dir, pth_prefix)
        self.copy_file(STARTUP_PTH, os.path.join(installation_dir, os.path.basename(STARTUP_PTH)))


setup(
    ext_modules=extensions(),
    cmdclass={
        "build_ext": OptionalBuildExt,
        "build_py": BuildPyWithStartupPth,
        "editable_wheel": EditableWheelWithStartupPth,
    },
)
