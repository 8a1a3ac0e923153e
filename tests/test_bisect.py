"""``spawnhang bisect`` against a package index the tests build offline: wheels of a tiny
package whose import, from 1.4 on, starts a non-daemon thread that never ends (tests/wheels.py).
Every run goes through the CLI in a real subprocess and a real venv per version; nothing
touches the network (--no-index --find-links)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import processes_with_token
from wheels import EXITS, make_wheel, tiny_index

from pytest_spawnhang.bisect.envs import EnvBuilder, InstallError
from pytest_spawnhang.bisect.versions import IndexOptions
from pytest_spawnhang.model import Report

HANG_S = "3"  # the deadline that calls a version's run a hang
IMPORT = ["python", "-c", "import tinypkg"]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    return tiny_index(tmp_path_factory.mktemp("index"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """Shared by the tests of this module: a version's venv is built once."""
    return tmp_path_factory.mktemp("cache")


def bisect(index: Path, cache: Path, report_dir: Path, *args: str,
           command: list[str] = IMPORT) -> subprocess.CompletedProcess:
    token = uuid.uuid4().hex
    done = subprocess.run(
        [sys.executable, "-m", "pytest_spawnhang", "bisect", *args, "--no-index",
         "--find-links", str(index), "--cache-dir", str(cache), "--report-dir", str(report_dir),
         "--timeout", HANG_S, "--", *command],
        env=dict(os.environ, SPAWNHANG_TEST_TOKEN=token), capture_output=True, text=True,
        timeout=300)
    assert processes_with_token(token) == []  # every run was reaped
    return done


def test_finds_the_first_bad_version_in_log2_steps(index, cache, tmp_path):
    done = bisect(index, cache, tmp_path, "tinypkg", "--good", "1.0", "--bad", "1.7")
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "bisect.json").read_text())
    assert (data["last_good"], data["first_bad"]) == ("1.3", "1.4")
    # The two ends, then one run per halving of the 6 versions between them.
    assert len(data["steps"]) == 2 + math.ceil(math.log2(6 + 1))
    assert [s["version"] for s in data["steps"]] == ["1.0", "1.7", "1.3", "1.5", "1.4"]
    assert {s["version"]: s["side"] for s in data["steps"]} == {
        "1.0": "good", "1.3": "good", "1.4": "bad", "1.5": "bad", "1.7": "bad"}
    assert "last good 1.3, first bad 1.4" in done.stderr
    # The hang is the real thread's: the first bad version's dump shows it, and the summary
    # printed at the end names it.
    first_bad = Report.load(tmp_path / "1.4" / "report.json")
    assert first_bad.verdict == "hang"
    assert "tinypkg-forever" in [t.name for p in first_bad.processes for t in p.threads]
    assert "tinypkg-forever" in done.stderr.split("first bad 1.4", 1)[1]
    # The page links every step's report, and each exists.
    links = re.findall(r'href="([^"]+)"', (tmp_path / "bisect.html").read_text())
    assert sorted(links) == sorted(s["html"] for s in data["steps"])
    assert all((tmp_path / link).is_file() for link in links)
    assert all((tmp_path / s["report"]).is_file() for s in data["steps"])


def test_a_second_bisection_reuses_the_environments(index, cache, tmp_path):
    bisect(index, cache, tmp_path / "first", "tinypkg", "--good", "1.2", "--bad", "1.5")
    done = bisect(index, cache, tmp_path / "again", "tinypkg", "--good", "1.2", "--bad", "1.5")
    steps = json.loads((tmp_path / "again" / "bisect.json").read_text())["steps"]
    assert done.returncode == 0, done.stderr
    assert steps and all(s["env_cached"] and s["env_s"] == 0 for s in steps)


def test_an_uninstallable_version_is_skipped_with_its_reason(tmp_path):
    index = tiny_index(tmp_path / "index", broken=("1.5",))
    done = bisect(index, tmp_path / "cache", tmp_path / "rep", "tinypkg", "--good", "1.0",
                  "--bad", "1.7")
    data = json.loads((tmp_path / "rep" / "bisect.json").read_text())
    skipped = [s for s in data["steps"] if s["side"] == "skip"]
    assert [s["version"] for s in skipped] == ["1.5"]
    assert "spawnhang-no-such-dependency" in skipped[0]["reason"]
    assert skipped[0]["report"] is None
    assert (data["last_good"], data["first_bad"]) == ("1.3", "1.4")
    assert done.returncode == 0, done.stderr


def test_a_skip_next_to_the_change_leaves_it_undecided(tmp_path):
    index = tiny_index(tmp_path / "index", broken=("1.4",))
    done = bisect(index, tmp_path / "cache", tmp_path / "rep", "tinypkg", "--good", "1.2",
                  "--bad", "1.6")
    data = json.loads((tmp_path / "rep" / "bisect.json").read_text())
    assert (data["last_good"], data["first_bad"], data["undecided"]) == ("1.3", "1.5", ["1.4"])
    assert done.returncode == 1
    assert "not decided: skipped 1.4" in done.stderr


def test_the_fix_direction_finds_the_first_version_that_exits(tmp_path):
    # Bad is the older end: the first good version is the release that ended the hang.
    index = tiny_index(tmp_path / "index", name="fixpkg", fixed=True)
    done = bisect(index, tmp_path / "cache", tmp_path / "rep", "fixpkg", "--fix", "--good",
                  "1.7", "--bad", "1.0", command=["python", "-c", "import fixpkg"])
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "rep" / "bisect.json").read_text())
    assert (data["direction"], data["last_bad"], data["first_good"]) == ("fix", "1.3", "1.4")
    assert data["first_bad"] is None and data["last_good"] is None
    assert "last bad 1.3, first good 1.4" in done.stderr


@pytest.mark.parametrize(("args", "why"), [
    (("--good", "1.4", "--bad", "1.7"), "the older end 1.4 should be good, but its run ended "
     "in hang"),
    (("--good", "1.0", "--bad", "1.3"), "the newer end 1.3 should be bad, but its run ended in "
     "exit"),
    (("--good", "1.0", "--bad", "1.7", "--verdict", "fail"), "the newer end 1.7 should be bad, "
     "but its run ended in hang"),
])
def test_ends_that_do_not_hold_stop_the_search(index, cache, tmp_path, args, why):
    done = bisect(index, cache, tmp_path, "tinypkg", *args)
    assert done.returncode == 1
    assert f"stopped: the ends do not hold: {why}" in done.stderr
    data = json.loads((tmp_path / "bisect.json").read_text())
    assert data["stopped"] and data["first_bad"] is None
    assert len(data["steps"]) <= 2


@pytest.mark.parametrize(("args", "message"), [
    (("no-such-package-spawnhang", "--good", "1.0", "--bad", "1.7", "--", "true"),
     "the package index has no no-such-package-spawnhang"),
    (("tinypkg", "--good", "0.9", "--bad", "1.7", "--", "true"),
     "--good 0.9: the index has no such version of tinypkg"),
    (("tinypkg", "--good", "1.0", "--bad", "2.0", "--", "true"),
     "--bad 2.0: the index has no such version of tinypkg"),
    (("tinypkg", "--good", "1.7", "--bad", "1.0", "--", "true"),
     "good 1.7 is not older than bad 1.0"),
    (("tinypkg", "--good", "1.2", "--bad", "1.2", "--", "true"),
     "good 1.2 is not older than bad 1.2"),
    (("tinypkg", "--fix", "--good", "1.0", "--bad", "1.7", "--", "true"),
     "--fix: bad 1.7 is not older than good 1.0"),
    (("tinypkg", "--good", "one", "--bad", "1.2", "--", "true"), "Invalid version: 'one'"),
    (("tinypkg", "--good", "1.0", "--bad", "1.7"), "required: -- COMMAND"),
    (("tinypkg", "--good", "1.0", "--bad", "1.7", "--with", "numpy<<2", "--", "true"),
     "not a requirement"),
])
def test_bad_input_gets_one_line_and_status_2(index, tmp_path, args, message):
    done = subprocess.run(
        [sys.executable, "-m", "pytest_spawnhang", "bisect", "--no-index", "--find-links",
         str(index), "--cache-dir", str(tmp_path), "--report-dir", str(tmp_path), *args],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("spawnhang: error: ") and message in done.stderr
    assert not (tmp_path / "bisect.json").exists()


def test_an_environment_keeps_the_current_packages(tmp_path):
    # psutil is installed here: a version that needs it gets none of its own, and a version
    # that needs another psutil cannot be installed (the current one is pinned), as torch would.
    index = tmp_path / "index"
    index.mkdir()
    for version, needs in (("1.0", "psutil>=5"), ("2.0", "psutil<1")):
        make_wheel(index, "needspsutil", version, EXITS.format(version=version), (needs,))
    builder = EnvBuilder("needspsutil", IndexOptions(find_links=[str(index)], no_index=True),
                         cache_dir=tmp_path / "cache")
    env = builder.get("1.0")
    site = next(env.path.glob("lib/python*/site-packages"))
    assert sorted(p.name for p in site.glob("*.dist-info")) == ["needspsutil-1.0.dist-info"]
    done = subprocess.run([env.python, "-c", "import needspsutil, psutil; print(psutil.__file__)"],
                          capture_output=True, text=True, check=True)
    assert not done.stdout.startswith(str(env.path))  # the current environment's psutil
    with pytest.raises(InstallError, match=re.escape("needspsutil==2.0 cannot be installed")):
        builder.get("2.0")
    assert not builder.path_for("2.0").exists()


# Pinning verdicts per version in a regression suite (docs/bisect.md): the environment builder
# and the spawnhang fixture, one test per version.
@pytest.mark.parametrize(("version", "verdict"), [("1.3", "exit"), ("1.4", "hang")])
def test_verdicts_pinned_per_version(index, cache, spawnhang, version, verdict):
    env = EnvBuilder("tinypkg", IndexOptions(find_links=[str(index)], no_index=True),
                     cache_dir=cache).get(version)
    result = spawnhang.run([str(env.python), "-c", "import tinypkg"], timeout=float(HANG_S))
    if verdict == "hang":
        result.assert_hangs(frame="_shutdown")
    else:
        result.assert_exits()
