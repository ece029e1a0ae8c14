"""Write the fuzz seed corpus: real Jupyter messages, as fuzz cases.

Each seed is a message kernelwire serializes for an ordinary kernel
conversation (requests, replies, IOPub output, comm messages with binary
buffers, routed through one or more identities), encoded as a
``hostile_oracle.Case`` with a spread of flags (scheme, copy, peek, recv over
a socket).  Headers are pinned (session, msg_id, date) so the corpus is
reproducible byte for byte:

    python fuzz/make_corpus.py [fuzz/corpus]
"""

from __future__ import annotations

import datetime
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from regressions.hostile_oracle import SCHEMES, Case, make_session  # noqa: E402

from kernelwire import Session  # noqa: E402

DATE = datetime.datetime(2024, 5, 17, 12, 30, 5, 123456, tzinfo=datetime.timezone.utc)


def header(session: Session, msg_type: str, n: int) -> dict:
    h = session.msg_header(msg_type)
    h.update(msg_id=f"fuzz-seed_1234_{n}", session="fuzz-seed", date=DATE, username="fuzzer")
    return h


def messages() -> list[tuple[str, dict, list, list]]:
    """(msg_type, content, buffers, idents) of a short kernel conversation."""
    return [
        (
            "execute_request",
            {
                "code": "print('hi')",
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": True,
                "stop_on_error": True,
            },
            [],
            [b"shell-client-1"],
        ),
        (
            "execute_reply",
            {"status": "ok", "execution_count": 3, "user_expressions": {}, "payload": []},
            [],
            [b"shell-client-1"],
        ),
        ("status", {"execution_state": "busy"}, [], [b"kernel.abc.status"]),
        ("stream", {"name": "stdout", "text": "héllo wörld ✓\n"}, [], []),
        (
            "kernel_info_reply",
            {
                "status": "ok",
                "protocol_version": "5.4",
                "implementation": "ipython",
                "language_info": {"name": "python"},
                "help_links": [{"text": "Python", "url": "https://python.org"}],
            },
            [],
            [b"a", b"b"],
        ),
        (
            "display_data",
            {"data": {"text/plain": "<Figure>"}, "metadata": {}, "transient": {"display_id": "d1"}},
            [b"\x89PNG\r\n\x1a\n" + bytes(64)],
            [],
        ),
        (
            "comm_msg",
            {"comm_id": "c0ffee", "data": {"method": "update", "buffer_paths": [["value"]]}},
            [bytes(range(256)), b""],
            [b"\x00\x01\xfe\xff"],
        ),
        (
            "error",
            {
                "ename": "ZeroDivisionError",
                "evalue": "division by zero",
                "traceback": ["Traceback", "  1/0", "ZeroDivisionError"],
            },
            [],
            [],
        ),
    ]


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    for scheme in range(len(SCHEMES)):
        session = make_session(Session, scheme)
        session.session = "fuzz-seed"
        for n, (msg_type, content, buffers, idents) in enumerate(messages()):
            # two flag spreads per message and scheme keep the corpus small
            if (n + scheme) % 2:
                continue
            parent = {"header": header(session, "execute_request", 1000 + n)}
            msg = session.msg(
                msg_type,
                content=content,
                parent=parent,
                header=header(session, msg_type, n),
                metadata={"started": DATE} if n % 3 == 0 else None,
            )
            frames = session.serialize(msg, ident=idents) + buffers
            for variant in range(2):
                case = Case(
                    frames=frames,
                    scheme=scheme,
                    copy=variant == 0 or n % 2 == 0,
                    content=variant == 0 or n % 3 != 0,
                    via_socket=variant == 1,
                )
                data = case.encode()
                name = hashlib.sha1(data).hexdigest()[:16]
                with open(os.path.join(out, f"{msg_type}-{name}"), "wb") as f:
                    f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus"))
