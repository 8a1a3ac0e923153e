"""The interpreters the matrix runs its variants with, so that one pytest run shows both sides of
the issue: the interpreter running pytest (``.venv`` in the README's main job: the newest wandb,
where every variant exits) and ``.venv-legacy`` (wandb 0.10.31, where the issue's ``mp.spawn``
variants hang). The expectations follow each interpreter's installed wandb, not its name.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from regression.expectations import wandb_era
from regression.variants import REPO

LEGACY_VENV = REPO / ".venv-legacy"
# Run by the other interpreter: its wandb version from metadata (importing wandb costs seconds).
_WANDB_VERSION = (
    "import importlib.metadata as m\n"
    "try:\n    print(m.version('wandb'))\n"
    "except m.PackageNotFoundError:\n    pass\n"
)


@dataclass(frozen=True)
class Environment:
    name: str  # the test id's first part
    python: str
    variants: str  # the slice of the matrix that runs there, in the --spawnhang-variants language
    missing: str = ""  # the skip reason when the interpreter is not there

    def exists(self) -> bool:
        return Path(self.python).exists()

    @property
    def wandb(self) -> str | None:
        return wandb_version(self.python)


ENVIRONMENTS = (
    Environment("current", sys.executable, "backend=gloo,nccl"),
    # gloo only: NCCL needs GPUs, and with them the newest wandb's run already covers NCCL.
    Environment(
        "legacy", str(LEGACY_VENV / "bin" / "python"), "backend=gloo",
        "no .venv-legacy: scripts/bootstrap.sh creates it with wandb 0.10.31, where the "
        "issue's hang is real",
    ),
)


def environments() -> tuple[Environment, ...]:
    """Both, unless the interpreter running pytest has a legacy wandb itself (tox's legacy env,
    or ``.venv-legacy/bin/python -m pytest``): its own run then covers that side."""
    if wandb_era(ENVIRONMENTS[0].wandb) == "legacy":
        return ENVIRONMENTS[:1]
    return ENVIRONMENTS


@cache
def wandb_version(python: str) -> str | None:
    if python == sys.executable:
        try:
            return importlib.metadata.version("wandb")
        except importlib.metadata.PackageNotFoundError:
            return None
    out = subprocess.run([python, "-c", _WANDB_VERSION], capture_output=True, text=True,
                         check=True).stdout.strip()
    return out or None
