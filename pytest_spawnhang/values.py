"""Values the user gives, checked the same way by every front end: seconds, and where reports
go. Cheap to import: the plugin reads it at start-up, with or without ``--spawnhang``."""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

# Where reports go, in the working directory, for the CLI and the plugin alike.
DEFAULT_REPORT_DIR = ".spawnhang"
# How long polling without progress must last before it is called a hang, when no window is
# given (docs/stall.md: the longest quiet poll of the regression matrix, with a wide margin).
DEFAULT_STALL_S = 10.0
# The words that turn hang detection off, wherever a stall window is typed.
OFF_WORDS = ("off", "false", "no")  # 0 stays an error: a window of no seconds is a typo


class SecondsError(ValueError):
    """A bad number of seconds; ``numeric`` says whether it was a number at all (the CLI words
    the two cases as argparse users expect, the plugin as pytest-timeout does)."""

    def __init__(self, message: str, numeric: bool) -> None:
        super().__init__(message)
        self.numeric = numeric


def parse_seconds(value: object) -> float | None:
    """A positive, finite number of seconds, or None for an empty value; ``SecondsError``
    otherwise, with a message that fits after the name of where the value came from."""
    if value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SecondsError(f"expected a number of seconds, got {value!r}", False) from None
    if not number > 0 or math.isinf(number):
        raise SecondsError(f"expected a positive number of seconds, got {value!r}", True)
    return number


def parse_stall(value: object) -> float | None:
    """A stall window: None for "off" (and ``False``), ``DEFAULT_STALL_S`` for an empty value,
    else a positive number of seconds (``SecondsError`` otherwise)."""
    if value is False or (isinstance(value, str) and value.strip().lower() in OFF_WORDS):
        return None
    if value is None or value == "" or value is True:
        return DEFAULT_STALL_S
    return parse_seconds(value)


def default_report_dir(base: str | Path = DEFAULT_REPORT_DIR) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(base) / stamp


def prepare_dir(path: str | Path) -> Path:
    """Create the report directory up front, so an unwritable one is a usage error, not a lost
    report at the end of a long run. Checked by writing, not ``os.access``: as root, or on a
    read-only mount, only a write tells."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    probe = path / ".write-test"
    probe.write_text("")
    probe.unlink()
    return path
