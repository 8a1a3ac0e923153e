"""Locals are opt-in, and secrets in them are redacted before they reach any file."""

from __future__ import annotations

from pytest_spawnhang.engine.dump import REDACTED, redact


def test_locals_are_absent_unless_asked(run_cli):
    run = run_cli("secret_locals.py", options=("--timeout", "3"))
    frames = [f for p in run.report.processes for t in p.threads for f in t.frames]
    assert frames and all(f.locals is None for f in frames)


def test_locals_redact_secret_names_and_token_shaped_values(run_cli):
    run = run_cli("secret_locals.py", options=("--timeout", "3", "--locals"))
    assert run.status == 124
    (frame,) = [f for p in run.report.processes for t in p.threads for f in t.frames
                if f.function == "login_and_wait"]
    values = {local.name: local.repr for local in frame.locals}
    assert values["api_key"] == values["WANDB_API_KEY"] == REDACTED
    assert values["session_token"] == REDACTED
    assert values["retries"] == "3"
    for path in run.report_dir.iterdir():
        assert "s3cr3t" not in path.read_text() and "ghp_aaaa" not in path.read_text()


def test_redact_keeps_ordinary_values():
    assert redact("learning_rate", "0.01") == "0.01"
    assert redact("password", "hunter2") == REDACTED
    assert redact("msg", "token ghp_" + "b" * 36 + " end") == f"token {REDACTED} end"
