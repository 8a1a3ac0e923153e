"""One environment per version of the bisected package, cached between runs.

Each is a bare venv whose site-packages holds only the bisected package (and whatever it needs
that the current environment lacks, plus ``extras`` such as ``protobuf<3.21``), with a ``.pth``
file that adds the current environment's site-packages after its own: everything else, torch
first of all, is the current environment's, never installed again. pip does the installing,
run by the venv's interpreter so that it sees the current environment's packages through that
``.pth`` and installs only what is missing; a constraints file pins every package it sees at
the version already there. (uv would be faster, but it reads only the environment's own
site-packages, not paths added by ``.pth`` files (astral-sh/uv#2500), so it would install
torch again.)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .versions import IndexOptions

READY = ".spawnhang-ready"  # written last: a venv without it was not finished


class InstallError(Exception):
    """The version cannot be installed here; the message is pip's reason."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spawnhang" / "bisect"


def parse_extras(texts: list[str]) -> list[Requirement]:
    """``--with`` requirements; a bad one raises ValueError with a one-line message."""
    parsed = []
    for text in texts:
        try:
            parsed.append(Requirement(text))
        except InvalidRequirement as exc:  # packaging's message points at the spot, over lines
            raise ValueError(f"not a requirement: {text!r} "
                             f"({str(exc).splitlines()[0]})") from None
    return parsed


@dataclass
class Env:
    """A built environment: run ``python`` (or anything in ``bin``) to use it."""

    path: Path
    package: str
    version: str
    build_s: float = 0.0  # 0 when it came from the cache
    cached: bool = False

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default os.environ) with this environment activated, as ``activate``
        does: its bin first on PATH, VIRTUAL_ENV set, PYTHONHOME unset."""
        env = dict(os.environ if base is None else base)
        env.pop("PYTHONHOME", None)
        env["VIRTUAL_ENV"] = str(self.path)
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", "")])
        return env


@dataclass
class EnvBuilder:
    """Builds (or finds in ``cache_dir``) the environment of one version of ``package``."""

    package: str
    index: IndexOptions = field(default_factory=IndexOptions)
    extras: list[Requirement] = field(default_factory=list)
    cache_dir: Path = field(default_factory=default_cache_dir)

    def key(self) -> str:
        """What a cached environment depends on besides the version: the environment it layers
        on and the extra requirements (the index does not change what a version is)."""
        text = "\n".join([sys.prefix, sys.version, *sorted(map(str, self.extras))])
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def path_for(self, version: str) -> Path:
        name = canonicalize_name(self.package)
        return self.cache_dir / f"{name}-{version}-{self.key()}"

    def get(self, version: str) -> Env:
        """The environment of ``version``, built unless the cache has it; InstallError when
        pip cannot install it (the half-built venv is removed)."""
        path = self.path_for(version)
        if (path / READY).exists():
            return Env(path, self.package, version, cached=True)
        shutil.rmtree(path, ignore_errors=True)
        started = time.monotonic()
        try:
            self._create(path)
            self._install(path, version)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        (path / READY).write_text(f"{self.package}=={version}\n")
        return Env(path, self.package, version, build_s=time.monotonic() - started)

    def _create(self, path: Path) -> None:
        venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
        site_dir = _venv_site_packages(path)
        lines = [f"import site; site.addsitedir({d!r})" for d in _current_site_dirs()]
        # Named to sort last, so the venv's own .pth files (editable installs) run first.
        (site_dir / "zz-spawnhang-base.pth").write_text("\n".join(lines) + "\n")

    def _install(self, path: Path, version: str) -> None:
        constraints = path / "constraints.txt"
        constraints.write_text(self._pins())
        log = path.parent / f"{path.name}.install.log"
        command = [str(path / "bin" / "python"), "-m", "pip", "install",
                   "--disable-pip-version-check", "--no-input", "-c", str(constraints),
                   f"{self.package}=={version}", *map(str, self.extras),
                   *self.index.pip_args()]
        with log.open("w") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                  env=Env(path, self.package, version).environ())
        if done.returncode != 0:
            errors = [line for line in log.read_text().splitlines() if line.startswith("ERROR")]
            reason = (errors[0].removeprefix("ERROR: ") if errors
                      else f"pip exited with status {done.returncode}")
            raise InstallError(f"{self.package}=={version} cannot be installed: {reason} "
                               f"(log: {log})")
        log.unlink()

    def _pins(self) -> str:
        """Every package of the current environment at its version, except the bisected one
        and those the extras name: pip may add what is missing, never change what is there."""
        free = {canonicalize_name(self.package), *(canonicalize_name(r.name) for r in self.extras)}
        pins = {}
        for dist in importlib.metadata.distributions(path=_current_site_dirs()):
            name = canonicalize_name(dist.metadata["Name"] or "")
            if name and name not in free:
                pins[name] = f"{name}=={dist.version}"
        return "".join(f"{pin}\n" for _, pin in sorted(pins.items()))


def _current_site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def _venv_site_packages(path: Path) -> Path:
    paths = sysconfig.get_paths(scheme="venv", vars={"base": str(path), "platbase": str(path)})
    return Path(paths["purelib"])
