"""The Linux child-subreaper flag, kept apart from ``tree`` so that setting it (as the pytest
plugin does at session start) costs no import of psutil."""

from __future__ import annotations

import ctypes
import sys

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process adopt the orphans of its tree (Linux), so that processes that ``setsid``
    or double-fork come back to it when their parent dies. Returns whether it worked."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
