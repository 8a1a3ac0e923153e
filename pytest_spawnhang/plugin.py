"""``pytest --spawnhang``: catch, explain and clean up hangs of multi-process tests.

This module is the ``pytest11`` entry point. It registers the options, the marker and the
``spawnhang`` fixture, and resolves the settings, and nothing else: without ``--spawnhang`` (or
``spawnhang = true`` in the ini file) it starts no thread and imports neither the engine nor
psutil. When enabled it registers the session plugin of ``plugin_session``, which does the work.
Every option is documented in ``docs/plugin.md``.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .plugin_fixture import Runner

LEAK_POLICIES = ("warn", "reap", "fail")
EXPECTATIONS = ("exit", "hang")
DEFAULT_DIR = ".spawnhang"

MARKER = (
    'spawnhang(timeout=None, stall=None, expect="exit", leaks=None): deadline and stall window '
    "in seconds for this test (they take precedence over pytest-timeout and "
    '--spawnhang-timeout); expect="hang" makes a caught hang pass and an exit fail; leaks= '
    "overrides --spawnhang-leaks for the processes this test leaves behind."
)

# Each option is also an ini key: its name without the leading dashes, "-" written "_".
_HELP = {
    "spawnhang": "enable the plugin: watch every test's processes, and on a hang dump, explain "
    "and reap them",
    "spawnhang_timeout": "deadline in seconds for a test that has none from the spawnhang "
    "marker or pytest-timeout (default: none)",
    "spawnhang_stall": "call a hang once the test's whole process tree has been idle and "
    "unchanged for this many seconds (default: off)",
    "spawnhang_dir": f"where reports go, one folder per hung test (default: {DEFAULT_DIR}/)",
    "spawnhang_native": "include native (C/C++) frames in dumps (about 10x slower)",
    "spawnhang_leaks": "what to do with processes that outlive the test or fixture that started "
    "them: warn (default: list them), reap (kill them), fail (kill them and fail the owner)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spawnhang", "catch, explain and clean up multi-process hangs")
    group.addoption("--spawnhang", action="store_true", default=None, help=_HELP["spawnhang"])
    group.addoption("--spawnhang-timeout", metavar="SECONDS", help=_HELP["spawnhang_timeout"])
    group.addoption("--spawnhang-stall", metavar="SECONDS", help=_HELP["spawnhang_stall"])
    group.addoption("--spawnhang-dir", metavar="DIR", help=_HELP["spawnhang_dir"])
    group.addoption("--spawnhang-native", action="store_true", default=None,
                    help=_HELP["spawnhang_native"])
    group.addoption("--spawnhang-leaks", metavar="POLICY", help=_HELP["spawnhang_leaks"])
    for key in ("spawnhang", "spawnhang_native"):
        parser.addini(key, _HELP[key], type="bool", default=False)
    for key in ("spawnhang_timeout", "spawnhang_stall", "spawnhang_dir", "spawnhang_leaks"):
        parser.addini(key, _HELP[key], default="")


@dataclass(frozen=True)
class Settings:
    """The session-wide settings, from the command line, else the ini file."""

    enabled: bool
    timeout_s: float | None
    timeout_from: str  # the option or ini key it came from, for messages
    stall_s: float | None
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
            directory = DEFAULT_DIR
        elif where.startswith("--"):
            base = config.invocation_params.dir
        else:  # an ini path is relative to the ini file, like pytest's own paths
            base = config.inipath.parent if config.inipath else config.rootpath
        leaks, where = get("spawnhang_leaks")
        if leaks and leaks not in LEAK_POLICIES:
            raise pytest.UsageError(
                f"{where}: expected one of {', '.join(LEAK_POLICIES)}, got {leaks!r}")
        timeout, timeout_from = get("spawnhang_timeout")
        return cls(
            enabled=bool(get("spawnhang")[0]),
            timeout_s=_usage_seconds(timeout, timeout_from),
            timeout_from=timeout_from,
            stall_s=_usage_seconds(*get("spawnhang_stall")),
            report_dir=base / Path(directory),
            native=bool(get("spawnhang_native")[0]),
            leaks=leaks or "warn",
        )


def seconds(value: object) -> float | None:
    """A positive, finite number of seconds, or None for an empty value; ValueError otherwise."""
    if value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0 or math.isinf(number):
        raise ValueError(f"expected a positive number of seconds, got {value!r}")
    return number


def _usage_seconds(value: object, where: str) -> float | None:
    try:
        return seconds(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Marker:
    """The arguments of one test's ``spawnhang`` marker, checked."""

    timeout_s: float | None = None
    stall_s: float | None = None
    expect: str = "exit"
    leaks: str | None = None

    @classmethod
    def of(cls, item: pytest.Item) -> Marker:
        """Raises ValueError for bad arguments."""
        marker = item.get_closest_marker("spawnhang")
        if marker is None:
            return cls()
        kwargs = dict(marker.kwargs)
        if len(marker.args) > 1:
            raise ValueError("spawnhang marker: only timeout may be given without a keyword")
        if marker.args:
            if "timeout" in kwargs:
                raise ValueError("spawnhang marker: timeout given twice")
            kwargs["timeout"] = marker.args[0]
        unknown = set(kwargs) - {"timeout", "stall", "expect", "leaks"}
        if unknown:
            raise ValueError(f"spawnhang marker: unknown argument(s) {', '.join(sorted(unknown))}")
        expect, leaks = kwargs.get("expect", "exit"), kwargs.get("leaks")
        if expect not in EXPECTATIONS:
            raise ValueError(f"spawnhang marker: expect must be 'exit' or 'hang', got {expect!r}")
        if leaks is not None and leaks not in LEAK_POLICIES:
            raise ValueError(f"spawnhang marker: leaks must be one of {', '.join(LEAK_POLICIES)}, "
                             f"got {leaks!r}")
        try:
            timeout_s, stall_s = seconds(kwargs.get("timeout")), seconds(kwargs.get("stall"))
        except ValueError as exc:
            raise ValueError(f"spawnhang marker: {exc}") from None
        return cls(timeout_s, stall_s, expect, leaks)


SETTINGS_KEY = pytest.StashKey[Settings]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    settings = Settings.from_config(config)
    config.stash[SETTINGS_KEY] = settings
    if not settings.enabled:
        return
    from .plugin_summary import Summary, XdistSummary

    try:  # now, rather than lose the first report to an unwritable directory
        settings.report_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(settings.report_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "Permission denied")
    except OSError as exc:
        raise pytest.UsageError(
            f"cannot write reports to {settings.report_dir}: {exc.strerror or exc}") from None

    # An xdist worker runs tests and sends its events to the controller, which runs none and
    # prints them; without xdist the one process does both.
    worker = hasattr(config, "workerinput")
    controller = not worker and getattr(config.option, "dist", "no") != "no"
    summary = None if worker else XdistSummary() if controller else Summary()
    if summary is not None:
        config.pluginmanager.register(summary, "spawnhang-summary")
    if not controller:
        from .plugin_session import SessionPlugin  # the engine's modules come in from here

        config.pluginmanager.register(SessionPlugin(config, settings, summary),
                                      "spawnhang-session")


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.enabled:
        return None
    timeout = f"{settings.timeout_s}s" if settings.timeout_s else "from marker/pytest-timeout"
    stall = f"{settings.stall_s}s" if settings.stall_s else "off"
    return (f"spawnhang: timeout {timeout}, stall {stall}, leaks={settings.leaks}, "
            f"reports in {settings.report_dir}")


def node_dir(base: Path, nodeid: str) -> Path:
    """The report folder of one test: its node id made a file name (unique, not too long)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_.") or "test"
    if len(name) > 100:
        name = f"{name[:90]}-{hashlib.sha1(nodeid.encode()).hexdigest()[:8]}"
    return base / name


@pytest.fixture
def spawnhang(request: pytest.FixtureRequest) -> Runner:
    """Run a command or a ``torch.multiprocessing.spawn`` target through the engine and get its
    report: ``spawnhang.run([...], timeout=5).assert_exits()``,
    ``spawnhang.spawn(worker, nprocs=2, timeout=5).assert_hangs(frame="worker")``."""
    from .plugin_fixture import Runner

    return Runner(request.node, request.config.stash[SETTINGS_KEY])
