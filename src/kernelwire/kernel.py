"""``python -m kernelwire.kernel -f CONNECTION_FILE``: an ipykernel on kernelwire.

The same kernel ``python -m ipykernel_launcher`` starts, with
``kernelwire.install()`` run first so the kernel app, the kernel, its
display hooks and its IOPub thread all build kernelwire Sessions.  The
kernelspec from ``python -m kernelwire install-kernelspec`` runs this.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Install kernelwire, then hand over to ipykernel's own entry point."""
    # like ipykernel_launcher: an empty first path entry would let files in
    # the notebook's directory shadow the kernel's own modules
    if sys.path and sys.path[0] == "":
        del sys.path[0]

    from kernelwire.install import install

    install()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
