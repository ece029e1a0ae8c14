"""The current process id, kept without a system call per message.

msg_id embeds the pid and check_pid compares it; os.getpid() is a syscall,
so cache it and refresh it in forked children.
"""

import os

pid = os.getpid()


def _refresh_after_fork() -> None:
    global pid
    pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_refresh_after_fork)
