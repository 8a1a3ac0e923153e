"""Hang detection with an explicit window on real process trees: closed waits are called long
before the deadline; busy or stepping trees are not."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

DEADLINE = ("--timeout", "300")


@pytest.mark.parametrize("script", ["queue_deadlock.py", "nondaemon_thread.py"])
def test_idle_tree_is_called_a_hang_by_the_closed_wait_rule(run_cli, script):
    run = run_cli(script, options=(*DEADLINE, "--stall", "3"))
    assert run.status == 124, run.stderr
    report = run.report
    assert (report.verdict, report.trigger) == ("hang", "stall")
    evidence = report.evidence
    assert evidence["rule"] == "closed wait" and evidence["window_s"] == 3.0
    assert evidence["readings"] >= 2 and evidence["waits"]
    assert report.duration_s < 300 and report.survivors == [] and run.leftovers == []


def test_cpu_busy_worker_with_an_unchanging_stack_is_not_a_stall(run_cli):
    run = run_cli("busy_worker.py", "5", options=(*DEADLINE, "--stall", "2"))
    assert run.status == 0, run.stderr
    assert (run.report.verdict, run.report.trigger) == ("exit", "exit")
    assert run.report.duration_s > 4  # it really ran longer than two windows


def test_steps_that_pause_shorter_than_the_window_are_not_a_stall(run_cli):
    run = run_cli("sleepy_steps.py", "4", "1.5", options=(*DEADLINE, "--stall", "3"))
    assert run.status == 0, run.stderr
    assert (run.report.verdict, run.report.trigger) == ("exit", "exit")
    assert run.report.duration_s > 6
