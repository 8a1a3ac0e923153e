"""Tiny wheels made on the spot, for a package index the tests build offline."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

# From this version on, importing the package starts a non-daemon thread that waits forever,
# so the interpreter never exits: it joins non-daemon threads at shutdown.
HANGS_FROM = (1, 4)
EXITS = "VERSION = {version!r}\n"
HANGS = """\
import threading

VERSION = {version!r}
threading.Thread(target=threading.Event().wait, name="tinypkg-forever").start()
"""


def make_wheel(directory: Path, name: str, version: str, source: str,
               requires: tuple[str, ...] = ()) -> Path:
    """Write ``name-version-py3-none-any.whl`` holding ``name/__init__.py`` = ``source``."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: spawnhang-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    target = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return target


def tiny_index(directory: Path, name: str = "tinypkg", versions: int = 8,
               broken: tuple[str, ...] = (), fixed: bool = False) -> Path:
    """Versions 1.0 .. 1.<versions-1> of ``name``; those in ``broken`` need a package no index
    has, so pip cannot install them. ``fixed`` turns the story round: the versions before 1.4
    hang and the later ones exit."""
    directory.mkdir(parents=True, exist_ok=True)
    for minor in range(versions):
        version = f"1.{minor}"
        hangs = ((1, minor) >= HANGS_FROM) != fixed
        source = (HANGS if hangs else EXITS).format(version=version)
        requires = ("spawnhang-no-such-dependency",) if version in broken else ()
        make_wheel(directory, name, version, source, requires)
    return directory
