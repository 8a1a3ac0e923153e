"""Fixtures: run a scenario script under ``spawnhang run`` as a real subprocess, and find every
process it left behind by a token in the environment that all its descendants inherit."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from helpers import SCENARIOS, processes_with_token

from pytest_spawnhang.model import Report

pytest_plugins = ["pytester"]

@dataclass
class CliRun:
    status: int
    stderr: str
    report_dir: Path
    leftovers: list[psutil.Process]

    @property
    def report(self) -> Report:
        return Report.load(self.report_dir / "report.json")


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run ``spawnhang run [options] -- python SCRIPT args``; kills and reports leftovers."""
    tokens = []

    def run(script: str, *args: str, options: tuple[str, ...] = (), python: str = sys.executable,
            guard_s: float = 120) -> CliRun:
        token = uuid.uuid4().hex
        tokens.append(token)
        report_dir = tmp_path / f"report-{len(tokens)}"
        env = dict(os.environ, SPAWNHANG_TEST_TOKEN=token, WANDB_MODE="offline",
                   WANDB_DIR=str(tmp_path), PYTHONPATH=str(SCENARIOS))
        target = script if os.path.isabs(script) else str(SCENARIOS / script)
        done = subprocess.run(
            [sys.executable, "-m", "pytest_spawnhang", "run", "--report-dir", str(report_dir),
             *options, "--", python, target, *args],
            env=env, capture_output=True, text=True, timeout=guard_s,
        )
        return CliRun(done.returncode, done.stderr, report_dir, processes_with_token(token))

    yield run
    for token in tokens:  # never let a failed test leak into the next one
        for proc in processes_with_token(token):
            proc.kill()
