"""Benchmarks of kernelwire against jupyter_client, raw pyzmq and a C libzmq floor.

Run ``python -m kernelwire.bench`` (``--help`` for the options).  Modules:
``registry`` (scenarios are pluggable: how to add one is documented there),
``scenarios`` (the built-in end-to-end ones), ``contenders``, ``payloads``,
``worker`` / ``processes`` (the two processes of a measurement), ``floor``
(building the C program), ``runner``, ``stats``, ``report``, ``chart``.
"""
