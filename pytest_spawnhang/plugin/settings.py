"""Every setting of the plugin, resolved in pure functions: the session's from the command line
and the ini file (``Settings.from_config``), and each test's whole plan from those, its marker
and pytest-timeout's deadline (``plan_test``), as pytest-timeout's ``_get_item_settings`` does.
Each bad value is named with where it came from. A leaf: it imports nothing of the engine."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..values import DEFAULT_REPORT_DIR, parse_seconds, parse_stall

LEAK_POLICIES = ("warn", "reap", "fail")
EXPECTATIONS = ("exit", "hang")
MARKER_SOURCE = "the spawnhang marker"


@dataclass(frozen=True)
class Settings:
    """The session-wide settings, from the command line, else the ini file."""

    enabled: bool
    timeout_s: float | None
    timeout_from: str  # the option or ini key it came from, for messages
    stall_s: float | None  # hang detection's polling window; None: detection off
    report_dir: Path
    native: bool
    leaks: str

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Raises ``pytest.UsageError`` naming the bad option or ini key."""

        def get(key: str) -> tuple[Any, str]:
            value = config.getoption(key)
            if value is not None:
                return value, "--" + key.replace("_", "-")
            return config.getini(key), f"ini option {key!r}"

        directory, where = get("spawnhang_dir")
        if not directory:
            base = config.invocation_params.dir
            directory = DEFAULT_REPORT_DIR
        elif where.startswith("--"):
            base = config.invocation_params.dir
        else:  # an ini path is relative to the ini file, like pytest's own paths
            base = config.inipath.parent if config.inipath else config.rootpath
        leaks, where = get("spawnhang_leaks")
        _usage(_check_choice, leaks or None, LEAK_POLICIES, where)
        timeout, timeout_from = get("spawnhang_timeout")
        return cls(
            enabled=bool(get("spawnhang")[0]),
            timeout_s=_usage(_check_seconds, timeout, timeout_from),
            timeout_from=timeout_from,
            stall_s=_usage(_check_stall, *get("spawnhang_stall")),
            report_dir=base / Path(directory),
            native=bool(get("spawnhang_native")[0]),
            leaks=leaks or "warn",
        )


def _check_seconds(value: object, where: str) -> float | None:
    try:
        return parse_seconds(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _check_stall(value: object, where: str) -> float | None:
    try:
        return parse_stall(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _check_choice(value: str | None, choices: tuple[str, ...], where: str) -> str | None:
    if value is not None and value not in choices:
        raise ValueError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _usage(check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@dataclass(frozen=True)
class Marker:
    """The arguments of one test's ``spawnhang`` marker, checked."""

    timeout_s: float | None = None
    stall_s: float | None = None
    expect: str = "exit"
    leaks: str | None = None
    stall_off: bool = False  # stall=False: no hang detection for this test

    @classmethod
    def from_mark(cls, mark: pytest.Mark | None) -> Marker:
        """Raises ValueError for bad arguments."""
        if mark is None:
            return cls()
        kwargs = dict(mark.kwargs)
        if len(mark.args) > 1:
            raise ValueError("spawnhang marker: only timeout may be given without a keyword")
        if mark.args:
            if "timeout" in kwargs:
                raise ValueError("spawnhang marker: timeout given twice")
            kwargs["timeout"] = mark.args[0]
        unknown = set(kwargs) - {"timeout", "stall", "expect", "leaks"}
        if unknown:
            raise ValueError(f"spawnhang marker: unknown argument(s) {', '.join(sorted(unknown))}")
        expect, leaks = kwargs.get("expect", "exit"), kwargs.get("leaks")
        if expect not in EXPECTATIONS:
            raise ValueError(f"spawnhang marker: expect must be 'exit' or 'hang', got {expect!r}")
        if leaks is not None and leaks not in LEAK_POLICIES:
            raise ValueError(f"spawnhang marker: leaks must be one of {', '.join(LEAK_POLICIES)}, "
                             f"got {leaks!r}")
        where = "spawnhang marker"
        stall = kwargs.get("stall")
        stall_off = stall is False or (isinstance(stall, str) and parse_stall(stall) is None)
        return cls(_check_seconds(kwargs.get("timeout"), where),
                   None if stall_off else _check_seconds(stall, where), expect, leaks, stall_off)


@dataclass(frozen=True)
class TestPlan:
    """What the plugin does with one test."""

    __test__ = False  # not a test class, whatever pytest's collection thinks of the name

    marker: Marker
    timeout_s: float | None  # the deadline, counted from the test's start
    timeout_from: str | None  # where it came from, for messages
    stall_s: float | None
    leaks: str
    error: str | None = None  # what is wrong with the marker: the setup fails with it

    @property
    def watchable(self) -> bool:
        return self.timeout_s is not None or self.stall_s is not None


def plan_test(settings: Settings, mark: pytest.Mark | None, pytest_timeout: float | None
              ) -> TestPlan:
    """One test's plan. Precedence: the spawnhang marker, then pytest-timeout's deadline, then
    ``--spawnhang-timeout`` (or its ini key); a bad marker leaves the session's settings and
    an error that fails the test's setup."""
    try:
        marker, error = Marker.from_mark(mark), None
    except ValueError as exc:
        marker, error = Marker(), str(exc)
    if marker.timeout_s is not None:
        timeout_s, timeout_from = marker.timeout_s, MARKER_SOURCE
    elif pytest_timeout is not None:
        timeout_s, timeout_from = pytest_timeout, "pytest-timeout"
    elif settings.timeout_s is not None:
        timeout_s, timeout_from = settings.timeout_s, settings.timeout_from
    else:
        timeout_s, timeout_from = None, None
    stall_s = None if marker.stall_off else marker.stall_s or settings.stall_s
    if error is None and marker.expect == "hang" and timeout_s is None and stall_s is None:
        error = ("spawnhang marker: expect='hang' needs a deadline (timeout= here, "
                 "pytest-timeout or --spawnhang-timeout) or hang detection")
    return TestPlan(marker, timeout_s, timeout_from, stall_s, marker.leaks or settings.leaks,
                    error)


def node_dir(base: Path, nodeid: str) -> Path:
    """The report folder of one test: its node id made a file name (unique, not too long)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_.") or "test"
    if len(name) > 100:
        name = f"{name[:90]}-{hashlib.sha1(nodeid.encode()).hexdigest()[:8]}"
    return base / name
