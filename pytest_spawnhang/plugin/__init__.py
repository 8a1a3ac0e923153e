"""``pytest --spawnhang``: catch, explain and clean up hangs of multi-process tests.

This module is the ``pytest11`` entry point. It registers the options, the marker and the
``spawnhang`` fixture, resolves the session's settings (``settings``), and hands over: without
``--spawnhang`` (or ``spawnhang = true`` in the ini file) it starts no thread and imports neither
the engine nor psutil. When enabled it registers the session plugin (``session``), which does
the work, and the terminal summary (``summary``). Every option is documented in
``docs/plugin.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ..values import DEFAULT_REPORT_DIR, DEFAULT_STALL_S, prepare_dir
from .settings import Settings

if TYPE_CHECKING:
    from .fixture import Runner

MARKER = (
    'spawnhang(timeout=None, stall=None, expect="exit", leaks=None): deadline and polling window '
    "in seconds for this test, stall=False: no hang detection (they take precedence over "
    "pytest-timeout, --spawnhang-timeout and --spawnhang-stall); "
    '--spawnhang-timeout); expect="hang" makes a caught hang pass and an exit fail; leaks= '
    "overrides --spawnhang-leaks for the processes this test leaves behind."
)

# Each option is also an ini key: its name without the leading dashes, "-" written "_".
_HELP = {
    "spawnhang": "enable the plugin: watch every test's processes, and on a hang dump, explain "
    "and reap them",
    "spawnhang_timeout": "deadline in seconds for a test that has none from the spawnhang "
    "marker or pytest-timeout (default: none)",
    "spawnhang_stall": "hang detection (docs/stall.md): a closed wait is called at once, "
    "polling without progress once it has lasted this many seconds (default "
    f"{DEFAULT_STALL_S:g}); off turns detection off",
    "spawnhang_dir": "where reports go, one folder per hung test (default: "
    f"{DEFAULT_REPORT_DIR}/)",
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


SETTINGS_KEY = pytest.StashKey[Settings]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    settings = Settings.from_config(config)
    config.stash[SETTINGS_KEY] = settings
    if not settings.enabled:
        return
    from .summary import Summary, XdistSummary

    try:  # now, rather than lose the first report to an unwritable directory
        prepare_dir(settings.report_dir)
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
        from .session import SessionPlugin

        config.pluginmanager.register(SessionPlugin(config, settings, summary),
                                      "spawnhang-session")


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.enabled:
        return None
    timeout = f"{settings.timeout_s}s" if settings.timeout_s else "from marker/pytest-timeout"
    detection = (f"hang detection on (closed waits at once, polling after {settings.stall_s:g}s)"
                 if settings.stall_s else "hang detection off")
    return (f"spawnhang: timeout {timeout}, {detection}, leaks={settings.leaks}, "
            f"reports in {settings.report_dir}")


@pytest.fixture
def spawnhang(request: pytest.FixtureRequest) -> Runner:
    """Run a command or a ``torch.multiprocessing.spawn`` target through the engine and get its
    report: ``spawnhang.run([...], timeout=5).assert_exits()``,
    ``spawnhang.spawn(worker, nprocs=2, timeout=5).assert_hangs(frame="worker")``."""
    from .fixture import Runner

    return Runner(request.node, request.config.stash[SETTINGS_KEY])
