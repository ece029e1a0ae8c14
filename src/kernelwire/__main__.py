"""``python -m kernelwire install-kernelspec [--user|--sys-prefix|--prefix P]``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

KERNEL_NAME = "kernelwire"
DISPLAY_NAME = "Python 3 (kernelwire)"


def kernel_json(executable: str | None = None, display_name: str = DISPLAY_NAME) -> dict:
    """The kernel.json of the kernelwire kernelspec."""
    return {
        "argv": [
            executable or sys.executable,
            "-m",
            "kernelwire.kernel",
            "-f",
            "{connection_file}",
        ],
        "display_name": display_name,
        "language": "python",
        "metadata": {"debugger": True},
    }


def install_kernelspec(
    user: bool = False,
    prefix: str | None = None,
    name: str = KERNEL_NAME,
    display_name: str = DISPLAY_NAME,
) -> str:
    """Install the kernelspec; returns the directory it went to."""
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        _copy_ipykernel_logos(tmp)
        with open(os.path.join(tmp, "kernel.json"), "w") as f:
            json.dump(kernel_json(display_name=display_name), f, indent=1)
        return KernelSpecManager().install_kernel_spec(
            tmp, kernel_name=name, user=user, prefix=prefix
        )


def _copy_ipykernel_logos(dest: str) -> None:
    # the same icons as the stock Python kernel, taken from the installed ipykernel
    try:
        from ipykernel.kernelspec import RESOURCES
    except ImportError:
        return
    for entry in os.listdir(RESOURCES):
        if entry.startswith("logo-"):
            shutil.copy(os.path.join(RESOURCES, entry), dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernelwire")
    commands = parser.add_subparsers(dest="command", required=True)
    spec = commands.add_parser(
        "install-kernelspec", help=f'install the "{DISPLAY_NAME}" kernelspec'
    )
    where = spec.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data dir")
    where.add_argument(
        "--sys-prefix", action="store_true", help=f"into this environment ({sys.prefix})"
    )
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    spec.add_argument("--name", default=KERNEL_NAME, help="kernelspec name (default: %(default)s)")
    spec.add_argument("--display-name", default=DISPLAY_NAME, help="name shown in front-ends")
    args = parser.parse_args(argv)

    prefix = sys.prefix if args.sys_prefix else args.prefix
    path = install_kernelspec(
        user=args.user, prefix=prefix, name=args.name, display_name=args.display_name
    )
    print(f"Installed kernelspec {args.name} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
