"""Wire-format constants and the packers kernelwire recognises.

Shared by both cores and the Session, so the compiled and the pure core
agree on every byte.
"""

from __future__ import annotations

import functools
from datetime import timezone

from dateutil import tz
from jupyter_client import session as jc_session
from jupyter_client._version import protocol_version
from jupyter_client.jsonutil import json_default

DELIM = b"<IDS|MSG>"
MIN_FRAMES = 5  # signature, header, parent_header, metadata, content
EMPTY_DICT_FRAME = b"{}"  # what both JSON packers make of {}
PROTOCOL_VERSION = protocol_version
UTC = timezone.utc  # what jupyter_client stamps headers with
dateutil_utc = tz.UTC  # what jupyter_client's date parser returns for "Z"

# Packers whose output for an empty dict is b"{}", and unpackers that read it back as {}.
json_family_packers = frozenset({jc_session.json_packer, jc_session.orjson_packer})
json_family_unpackers = frozenset({jc_session.json_unpacker, jc_session.orjson_unpacker})

if jc_session.has_orjson:
    import orjson

    # jupyter_client's orjson_packer minus its Python frame: same call, same bytes.
    orjson_fast_packer = jc_session.orjson_packer
    orjson_dumps_fast = functools.partial(
        orjson.dumps, default=json_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
    )
else:  # pragma: no cover - orjson is a dependency
    orjson_fast_packer = None
    orjson_dumps_fast = None
