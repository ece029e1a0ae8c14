# Header dates for the compiled core: parse jupyter_client's ISO 8601
# stamps without dateutil, and stamp new headers without a Python call.
# Included by _ccore.pyx (one extension module, no cross-module calls);
# the pure twin is the "dates" section of _pycore.py.

cdef extern from "clock_helper.h":
    int kw_utc_now(int64_t *seconds, int *microseconds)
    void kw_civil_from_days(int64_t days, int *year, int *month, int *day)

cdef object _original_parse_date = jsonutil.parse_date
cdef object _original_extract_dates = jsonutil.extract_dates
cdef object _UTC = UTC
cdef object _DATEUTIL_UTC = dateutil_utc

cdef inline int _digit(const char *p, Py_ssize_t i):
    cdef char c = p[i]
    if c < 48 or c > 57:  # not '0'..'9'
        return -1
    return c - 48


cdef int _number(const char *p, Py_ssize_t start, Py_ssize_t n):
    """The decimal number in p[start:start+n], or -1 if a character is not a digit."""
    cdef int value = 0
    cdef int d
    cdef Py_ssize_t i
    for i in range(start, start + n):
        d = _digit(p, i)
        if d < 0:
            return -1
        value = value * 10 + d
    return value


cdef inline bint _maybe_iso_date(str s):
    # jsonutil.ISO8601_PAT fixes the separators' positions and bounds the
    # length (19 to 32, plus a newline that "$" accepts): anything failing
    # this cannot match it.
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    return (
        19 <= n <= 33
        and PyUnicode_READ_CHAR(s, 4) == u'-'
        and PyUnicode_READ_CHAR(s, 7) == u'-'
        and PyUnicode_READ_CHAR(s, 10) == u'T'
        and PyUnicode_READ_CHAR(s, 13) == u':'
        and PyUnicode_READ_CHAR(s, 16) == u':'
    )


cdef object _utc_stamp(str s):
    """The datetime of an ASCII ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` stamp, else None.

    Identical to what dateutil (and so jsonutil.parse_date) returns for it.
    """
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    cdef const char *p
    cdef int year, month, day, hour, minute, second, micro, digits
    if PyUnicode_IS_ASCII(s) and PyUnicode_READ_CHAR(s, n - 1) == u'Z' and (
        n == 20 or (22 <= n <= 27 and PyUnicode_READ_CHAR(s, 19) == u'.')
    ):
        p = PyUnicode_1BYTE_DATA(s)
        year = _number(p, 0, 4)
        month = _number(p, 5, 2)
        day = _number(p, 8, 2)
        hour = _number(p, 11, 2)
        minute = _number(p, 14, 2)
        second = _number(p, 17, 2)
        micro = 0
        if n > 20:
            digits = <int>(n - 21)
            micro = _number(p, 20, digits)
            while digits < 6 and micro >= 0:
                micro *= 10
                digits += 1
        if (year >= 0 and month >= 0 and day >= 0 and hour >= 0 and minute >= 0
                and second >= 0 and micro >= 0 and hour < 24):
            try:
                return datetime_new(year, month, day, hour, minute, second, micro, _DATEUTIL_UTC)
            except ValueError:
                pass  # out of range: the caller's parser raises its own error
    return None


cdef object _parse_date(str s):
    """jsonutil.parse_date for one string; ASCII ``...Z`` stamps parsed here."""
    if not _maybe_iso_date(s):
        return s
    cdef object dt = _utc_stamp(s)
    return _original_parse_date(s) if dt is None else dt


def parse_utc_stamp(s):
    """The datetime of an ASCII ``...Z`` ISO8601 stamp, as dateutil gives it; else None."""
    if type(s) is not str or not _maybe_iso_date(<str>s):
        return None
    return _utc_stamp(<str>s)


def parse_date(s):
    """Equivalent of jupyter_client.jsonutil.parse_date for a string."""
    if s is None:
        return s
    return _parse_date(s)


# Containers inside a header are handed to jupyter_client's own (Python)
# extract_dates: real headers are flat, and deep nesting then hits the
# RecursionError at (nearly) the depth jupyter_client always did, spending
# Python frames as it does. The C stack never grows.
cdef int _COMPILED_NESTING = 1


cdef object _extract_dates(object obj, int depth=0):
    cdef dict new
    cdef Py_ssize_t pos = 0
    cdef PyObject *key
    cdef PyObject *value
    if PyUnicode_CheckExact(obj):
        return _parse_date(<str>obj)
    if depth >= _COMPILED_NESTING:
        return _original_extract_dates(obj)
    if PyDict_CheckExact(obj):
        # a copy keeps the keys and their order; only values that change are set
        new = PyDict_Copy(obj)
        while PyDict_Next(obj, &pos, &key, &value):
            if PyUnicode_CheckExact(<object>value):
                if not _maybe_iso_date(<str>value):
                    continue
            elif not isinstance(<object>value, (dict, list, tuple, str)):
                continue
            new[<object>key] = _extract_dates(<object>value, depth + 1)
        return new
    if isinstance(obj, (list, tuple)):
        return [_extract_dates(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        new = {}
        for k, v in obj.items():
            new[k] = _extract_dates(v, depth + 1)
        return new
    if isinstance(obj, str):
        return _parse_date(<str>obj)
    return obj


def extract_dates(obj):
    """Equivalent of jupyter_client.jsonutil.extract_dates, with a compiled parser."""
    return _extract_dates(obj)


cdef object _utcnow():
    """datetime.now(timezone.utc), without the Python-level call."""
    cdef int64_t seconds, days, rem
    cdef int micro, year, month, day
    if not kw_utc_now(&seconds, &micro):
        import datetime as _dt
        return _dt.datetime.now(_UTC)
    days = seconds // 86400
    rem = seconds - days * 86400
    kw_civil_from_days(days, &year, &month, &day)
    return datetime_new(year, month, day, <int>(rem // 3600), <int>((rem // 60) % 60),
                        <int>(rem % 60), micro, _UTC)
