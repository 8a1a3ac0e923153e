"""The engine's front door: everything the CLI and the pytest plugin use, and nothing else.

Launch and watch a tree (``run_command``, ``Watch``), track it (``ProcessTracker``), capture a
hang (``hang_report``: dump every process, label, diagnose, reap), tidy up (``reap``,
``settle``, ``reap_stragglers``). It knows nothing of pytest, torch or wandb.

The names load on first use (PEP 562): the plugin reaches for ``direct_children`` once per test
and ``become_subreaper`` at session start, and must not pay then for psutil, py-spy's wrapper
and the diagnosis, which come in with the first watched test.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .capture import (
        CaptureOptions,
        hang_report,
        new_report,
        reap_stragglers,
        roles_of,
        snapshot,
    )
    from .children import direct_children, has_children
    from .kernel import held_addresses
    from .run import Watch, exit_status, run_command
    from .stall import OtherNodes, Scope, StallDetector
    from .subreaper import become_subreaper
    from .tree import ProcessTracker, Seen, reap, settle

# Each public name and the module that is its home.
_HOMES = {
    "CaptureOptions": "capture", "hang_report": "capture", "new_report": "capture",
    "reap_stragglers": "capture", "roles_of": "capture", "snapshot": "capture",
    "direct_children": "children", "has_children": "children", "held_addresses": "kernel",
    "Watch": "run", "exit_status": "run", "run_command": "run",
    "OtherNodes": "stall", "Scope": "stall", "StallDetector": "stall",
    "become_subreaper": "subreaper",
    "ProcessTracker": "tree", "Seen": "tree", "reap": "tree", "settle": "tree",
}
__all__ = [  # the same names as _HOMES, spelled out for readers and linters
    "CaptureOptions", "OtherNodes", "ProcessTracker", "Scope", "Seen", "StallDetector", "Watch",
    "become_subreaper",
    "direct_children", "exit_status", "hang_report", "has_children", "held_addresses",
    "new_report", "reap", "reap_stragglers", "roles_of", "run_command", "settle", "snapshot",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # the next lookup is a plain global
    return value


def __dir__() -> list[str]:
    return __all__
