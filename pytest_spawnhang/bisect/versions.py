"""The released versions of a package, as pip itself sees them.

pip is asked (``pip index versions``), so its configuration (pip.conf, ``PIP_*`` variables,
extra indexes, find-links) applies as it would to an install; only the given index options are
added. Only versions that pip could install on this interpreter are listed.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

_LISTED = "Available versions:"


class IndexLookupError(Exception):
    """The index cannot answer for the package: one line, for the user."""


@dataclass
class IndexOptions:
    """Where packages come from, on top of pip's own configuration."""

    index_url: str | None = None
    find_links: list[str] = field(default_factory=list)
    no_index: bool = False

    def pip_args(self) -> list[str]:
        args = ["--index-url", self.index_url] if self.index_url else []
        for place in self.find_links:
            args += ["--find-links", place]
        return [*args, "--no-index"] if self.no_index else args


def list_versions(package: str, index: IndexOptions) -> list[Version]:
    """Every version of ``package`` the index offers, oldest first, pre-releases included."""
    command = [sys.executable, "-m", "pip", "index", "versions", package, "--pre",
               "--disable-pip-version-check", *index.pip_args()]
    done = subprocess.run(command, capture_output=True, text=True)
    listed = [line for line in done.stdout.splitlines() if line.startswith(_LISTED)]
    if done.returncode != 0 or not listed:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise IndexLookupError(f"the package index has no {package}"
                          + (f" ({errors[-1].removeprefix('ERROR: ')})" if errors else ""))
    versions = []
    for text in listed[0].removeprefix(_LISTED).split(","):
        try:
            versions.append(Version(text.strip()))
        except InvalidVersion:  # legacy version strings cannot be ordered; pip skips them too
            continue
    return sorted(set(versions))


def between(versions: list[Version], one: Version, other: Version) -> list[Version]:
    """The versions from the older of the two ends to the newer, both included; pre-releases
    only when an end is one (as pip installs them only when asked)."""
    low, high = sorted((one, other))
    pre = low.is_prerelease or high.is_prerelease
    return [v for v in versions if low <= v <= high and (pre or not v.is_prerelease)]
