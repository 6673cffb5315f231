"""Processes lgd starts (digitise workers, 7zz) die with it, however it dies."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent: int | None = None) -> None:
    """In a child process: ask the kernel to SIGKILL it when its parent (`parent`, default the current one) dies.

    Without it a SIGKILLed lgd leaves its workers, or a 7zz deriving keys at 100% CPU, running
    for ever under PID 1. PR_SET_PDEATHSIG is Linux's; elsewhere nothing is done. If the parent
    died before the request took effect, the child exits at once.
    """
    parent = os.getppid() if parent is None else parent
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)
