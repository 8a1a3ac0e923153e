"""Values the user types, checked the same way by every front end."""

from __future__ import annotations

import math

# Where reports go, in the working directory, for the CLI and the plugin alike.
DEFAULT_REPORT_DIR = ".spawnhang"


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
