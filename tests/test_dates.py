"""The cores' date extraction against jupyter_client.jsonutil.extract_dates."""

from __future__ import annotations

import warnings
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_client import jsonutil


def outcome(fn, value):
    """(result or exception type, warning categories) of fn(value)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(value)
        except Exception as e:
            result = type(e)
    return result, [w.category for w in caught]


def assert_same(core, value):
    ours, our_warnings = outcome(core.extract_dates, value)
    theirs, their_warnings = outcome(jsonutil.extract_dates, value)
    assert ours == theirs
    assert our_warnings == their_warnings
    if isinstance(theirs, datetime):
        assert type(ours) is datetime
        assert ours.tzinfo == theirs.tzinfo
        assert type(ours.tzinfo) is type(theirs.tzinfo)
        assert ours.utcoffset() == theirs.utcoffset()


EDGE_CASES = [
    "2026-11-21T09:30:15Z",
    "2026-11-21T09:30:15.1Z",
    "2026-11-21T09:30:15.123456Z",
    "2026-11-21T09:30:15.1234567Z",
    "2026-11-21T09:30:15.Z",
    "2026-11-21T09:30:15",
    "2026-11-21T09:30:15+00:00",
    "2026-11-21T09:30:15-05:30",
    "2026-11-21T09:30:15+0530",
    "2026-11-21T09:30:15.5+05:30",
    "2026-11-21T09:30:15Z\n",
    "2026-11-21T24:00:00Z",
    "2026-13-21T09:30:15Z",
    "2026-02-30T09:30:15Z",
    "2026-11-21T09:60:15Z",
    "2026-11-21T09:30:60Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "٢٠٢٦-11-21T09:30:15Z",  # Arabic-Indic digits: \\d matches them
    "2026-11-21t09:30:15Z",
    "2026-11-21T09:30:15z",
    "2026-11-21 09:30:15Z",
    "not a date at all",
    "",
]


@pytest.mark.parametrize("value", EDGE_CASES)
def test_edge_cases(core, value):
    assert_same(core, value)


def test_nested_structures(core):
    value = {
        "a": ["2026-11-21T09:30:15Z", {"b": ("2020-01-01T00:00:00.5Z", 3, None)}],
        "c": 1.5,
        "d": "plain",
    }
    assert_same(core, value)
    assert list(core.extract_dates(value)) == ["a", "c", "d"]


def test_input_not_modified(core):
    value = {"date": "2026-11-21T09:30:15Z", "inner": {"date": "2026-11-21T09:30:15Z"}}
    out = core.extract_dates(value)
    assert value["date"] == "2026-11-21T09:30:15Z"
    assert value["inner"]["date"] == "2026-11-21T09:30:15Z"
    assert out is not value and out["inner"] is not value["inner"]


def test_deep_nesting_raises_recursion_error(core):
    deep: list = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    with pytest.raises(RecursionError):
        core.extract_dates(deep)


date_like = st.builds(
    lambda y, mo, d, h, mi, s, frac, tz: (
        f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{tz}"
    ),
    st.integers(0, 9999),
    st.integers(0, 14),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,7}", fullmatch=True)),
    st.sampled_from(
        ["", "Z", "z", "+00:00", "-00:00", "+01:00", "-0930", "+23:59", "+24:00", "Z\n"]
    ),
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(date_like, st.text(max_size=40)))
def test_random_strings_agree(core, value):  # the core fixture is stateless
    assert_same(core, value)
