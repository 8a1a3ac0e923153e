"""Helpers the tests import (fixtures live in conftest.py, which is not imported by name: the
repository has a root conftest.py too)."""

from __future__ import annotations

from pathlib import Path

import psutil

SCENARIOS = Path(__file__).parent / "scenarios"


def processes_with_token(token: str, var: str = "SPAWNHANG_TEST_TOKEN") -> list[psutil.Process]:
    """The live processes whose environment holds ``var=token`` (a zombie has ended)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(var) == token and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found
