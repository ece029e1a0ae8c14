"""IPython Parallel's own header-date parsing routed through kernelwire's parser."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import pytest

ipp_util = pytest.importorskip("ipyparallel.util")

from kernelwire import _ipp_originals, ipp_dates  # noqa: E402

ORIGINALS = _ipp_originals.dates()  # ipyparallel.util is imported: recorded now

STAMPS = [
    "2026-12-01T21:23:25Z",
    "2026-12-01T21:23:25.1Z",
    "2026-12-01T21:23:25.123Z",
    "2026-12-01T21:23:25.123456Z",
    "1999-01-31T00:00:59.000001Z",
    "2024-02-29T23:59:59.999999Z",
    "2026-12-01T21:23:25.123456+02:00",
    "2026-12-01T21:23:25-0530",
    "2026-12-01T21:23:25.5",  # naive: the original's warning and local time
    "2023-02-29T00:00:00Z",  # out of range: dateutil's error
    "2026-12-01T24:00:00Z",
    "2026-12-01T21:23:25.1234567Z",  # 7 digits: not ISO8601_PAT, returned as is
    "2026-12-01 21:23:25Z",
    "hello Z",
    "",
    "Z",
    "２０２６-12-01T21:23:25Z",  # non-ASCII digits
    None,
]


def outcome(parse, s):
    """What ``parse(s)`` gives: value, type and tzinfo, the warnings, or the error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = parse(s)
        except Exception as e:  # the error is the outcome compared
            return ("error", type(e), str(e))
    return (value, type(value), getattr(value, "tzinfo", None),
            [(w.category, str(w.message)) for w in caught])


@pytest.mark.parametrize("stamp", STAMPS)
@pytest.mark.parametrize("original", [ORIGINALS["jsonutil_parse_date"], ORIGINALS["_parse_date"]],
                         ids=["jupyter_client", "ipyparallel"])
def test_routed_parser_gives_identical_datetimes(core, original, stamp):
    routed = ipp_dates._parse_utc_first(original, core.parse_utc_stamp)
    expected, got = outcome(original, stamp), outcome(routed, stamp)
    assert got == expected
    if isinstance(expected[0], object) and hasattr(expected[0], "utcoffset"):
        assert got[0].utcoffset() == expected[0].utcoffset()


def test_routed_extract_dates_matches_ipyparallels(core):
    routed = ipp_dates._extract_with(ipp_dates._parse_utc_first(ORIGINALS["_parse_date"],
                                                                core.parse_utc_stamp))
    header = {"date": STAMPS[3], "nested": [STAMPS[0], (STAMPS[6], 5)], "n": 1,
              "s": "text", "none": None}
    assert routed(header) == ORIGINALS["extract_dates"](header)
    assert routed(STAMPS[2]) == ORIGINALS["extract_dates"](STAMPS[2])


def test_install_rebinds_the_hub_the_client_and_the_db(tmp_path):
    """In a fresh process, as the KERNELWIRE_INSTALL hook runs it: before ipyparallel loads."""
    code = textwrap.dedent("""
        import kernelwire
        kernelwire.install()
        from jupyter_client import jsonutil
        import ipyparallel.controller.hub as hub, ipyparallel.util as util
        import ipyparallel.client.asyncresult as asyncresult
        import ipyparallel.controller.sqlitedb as sqlitedb
        from kernelwire import ipp_dates
        assert ipp_dates.is_installed()
        assert hub.parse_date is not jsonutil.parse_date
        assert hub.parse_date.__wrapped__ is jsonutil.parse_date
        assert asyncresult._parse_date is util._parse_date
        assert util._parse_date.__wrapped__.__module__ == "ipyparallel.util"
        assert hub.extract_dates is util.extract_dates is sqlitedb.extract_dates
        stamp = "2026-12-01T21:23:25.123456Z"
        header = {"date": stamp}
        hub.ensure_date_is_parsed(header)
        assert header["date"] == jsonutil.parse_date(stamp)
        kernelwire.uninstall()
        assert not ipp_dates.is_installed()
        assert hub.parse_date is jsonutil.parse_date
        assert util._parse_date.__module__ == "ipyparallel.util"
        assert asyncresult._parse_date is util._parse_date
        print("ok", kernelwire.implementation)
    """)
    for pure in ("0", "1"):
        env = {k: v for k, v in os.environ.items() if k != "KERNELWIRE_INSTALL"}
        env["KERNELWIRE_PURE"] = pure
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[0] == "ok"


def test_the_startup_hook_rebinds_the_hub_of_a_controller_process(tmp_path):
    """KERNELWIRE_INSTALL=1 installs while ipyparallel.util is still importing: still routed."""
    code = textwrap.dedent("""
        import ipyparallel.controller.app
        import ipyparallel.controller.hub as hub, ipyparallel.util as util
        import ipyparallel.client.asyncresult as asyncresult
        from jupyter_client import jsonutil
        from kernelwire import ipp_dates
        assert ipp_dates.is_installed()
        assert hub.parse_date.__wrapped__ is jsonutil.parse_date
        assert asyncresult._parse_date is util._parse_date
        assert util._parse_date.__wrapped__.__module__ == "ipyparallel.util"
        print("ok")
    """)
    env = dict(os.environ, KERNELWIRE_INSTALL="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok"]
