"""Benchmarks of kernelwire against jupyter_client, raw pyzmq and a C libzmq floor.

Run ``python -m kernelwire.bench`` (``--help`` for the options).  Modules:
``base`` (what a scenario is made of; how to add one is documented there),
``scenarios`` (the built-in end-to-end ones), ``ipp_cluster`` and
``serialize_object`` (the optional ones), ``contenders``, ``payloads``,
``worker`` / ``processes`` (the two processes of a measurement), ``floor``
(building the C program), ``runner`` (the list of scenarios, and the run),
``stats``, ``report``, ``chart``.
"""
