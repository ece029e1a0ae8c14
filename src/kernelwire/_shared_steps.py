"""The steps of a send and a receive that both cores run as plain Python.

Compiling these gains nothing (they are not per-frame work, or they call
straight into C already), so the compiled core imports them from here and
the two cores cannot drift apart on them.
"""

from __future__ import annotations

import itertools
import pprint
import random
import typing as t
from hmac import compare_digest

from ._protocol import DELIM


def check_buffers(buffers: t.Sequence) -> None:
    """Buffers must support the buffer protocol and be contiguous (as jupyter_client checks)."""
    for idx, buf in enumerate(buffers):
        if type(buf) is memoryview:
            view = buf
        else:
            try:
                view = memoryview(buf)
            except TypeError as e:
                raise TypeError("Buffer objects must support the buffer protocol.") from e
        if not view.contiguous:
            raise ValueError("Buffer %i (%r) is not contiguous" % (idx, buf))


def as_buffers(frames: list) -> list:
    """Buffers of a received message as memoryviews (no copy of Frames)."""
    buffers = [memoryview(b) for b in frames]
    if buffers and buffers[0].shape is None:
        # pyzmq #646: an old Frame without a shape; copy, as jupyter_client does
        buffers = [memoryview(bytes(b.bytes)) for b in frames]
    return buffers


def signature_matches(signature: t.Any, expected: bytes) -> bool:
    """Does ``signature`` equal the ``expected`` hex digest? Constant time.

    The length is public (the signature scheme fixes it), so it is checked
    first; the comparison of equal-length values is hmac.compare_digest's,
    which also raises jupyter_client's TypeError for a signature of the
    wrong type.
    """
    if type(signature) is bytes and len(signature) != len(expected):
        return False
    return compare_digest(signature, expected)


def cull_digest_history(history: set, size: int) -> None:
    """Drop max(10%, excess) of the replay history, chosen at random, without sorting."""
    current = len(history)
    n_to_cull = max(current // 10, current - size)
    if n_to_cull >= current:
        history.clear()
        return
    # a random window of the set's (hash-randomised) order: O(n), no sort
    start = random.randrange(current - n_to_cull + 1)
    victims = list(itertools.islice(history, start, start + n_to_cull))
    history.difference_update(victims)


def pack_content(content: t.Any, pack_part: t.Callable[[t.Any], bytes]) -> bytes:
    """The content frame of a message whose content is not a plain dict.

    None packs as {}, bytes are already packed (a relayed message), str is
    encoded; anything else is jupyter_client's TypeError.
    """
    if content is None:
        return pack_part({})
    if isinstance(content, dict):
        return pack_part(content)
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf8")
    raise TypeError("Content incorrect type: %s" % type(content))


def routing_prefix(ident: t.Any) -> list:
    """``[idents..., DELIM]``, the start of a message's frames (ident: None, one or a list)."""
    if ident is None:
        return [DELIM]
    to_send = list(ident) if isinstance(ident, list) else [ident]
    to_send.append(DELIM)
    return to_send


def print_sent(msg: dict, to_send: list, buffers: list) -> None:
    """What a Session with ``debug`` prints after a send, as jupyter_client does."""
    pprint.pprint(msg)
    pprint.pprint(to_send)
    pprint.pprint(buffers)


def signed_prefix(signature: bytes, ident: t.Any = None) -> list:
    """``[idents..., DELIM, signature]``: what send_raw puts before packed frames."""
    to_send: list = []
    if isinstance(ident, bytes):
        ident = [ident]
    if ident is not None:
        to_send.extend(ident)
    to_send.append(DELIM)
    to_send.append(signature)
    return to_send
