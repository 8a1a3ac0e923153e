"""The diagnosis on recorded reports of real runs (tests/data/reports/, see its README) and on a
few live runs.

The live wandb test needs wandb 0.10.x, so it skips in the CI's environment; run it in the
legacy one: ``.venv-legacy/bin/python -m pytest tests/test_diagnosis.py -k legacy``.
"""

from __future__ import annotations

import copy
import re
import time
from importlib import metadata
from pathlib import Path

import pytest

import pytest_spawnhang.diagnosis as diagnosis
from pytest_spawnhang.diagnosis import diagnose, explain, load_rules
from pytest_spawnhang.diagnosis.states import KIND_TEXT, STATE_PATTERNS
from pytest_spawnhang.model import Diagnosis, Report

REPORTS = Path(__file__).parent / "data" / "reports"
DOCS = Path(__file__).parent.parent / "docs" / "diagnosis.md"
HANG = 124

# Recorded case: (chains as labels, root causes as labels, rules found).
CASES = {
    "legacy_wandb_rank0": ([["launcher", "rank 0", "wandb internal"]], ["wandb internal"],
                           ["wandb-internal-joined-at-exit"]),
    "legacy_wandb_group": ([["launcher", "rank 0", "wandb internal"],
                            ["launcher", "rank 1", "wandb internal"]],
                           ["wandb internal", "wandb internal"], ["wandb-internal-joined-at-exit"]),
    "gloo_mismatch": ([["launcher", "rank 0"], ["launcher", "rank 1"]], ["rank 0", "rank 1"],
                      ["collective-mismatch"]),
    "gloo_mismatch_3ranks": ([["launcher", "rank 0"], ["launcher", "rank 1"],
                              ["launcher", "rank 2"]], ["rank 0", "rank 1", "rank 2"],
                             ["collective-mismatch"]),
    "torchrun_mismatch": ([["launcher", "rank 0"], ["launcher", "rank 1"]], ["rank 0", "rank 1"],
                          ["collective-mismatch"]),
    "queue_deadlock": ([["launcher", "rank 0"]], ["rank 0"], ["queue-feeder-holds-data"]),
    "nondaemon_thread": ([["launcher", "rank 0"], ["launcher", "rank 1"]], ["rank 0", "rank 1"],
                         ["non-daemon-thread-at-exit"]),
    "unjoined_child": ([["launcher", "rank 0", "worker child"]], ["worker child"],
                       ["child-never-joined"]),
    "pg_not_destroyed": ([["launcher", "rank 0"], ["launcher", "rank 1"]], ["rank 0", "rank 1"],
                         ["stuck-finalizing"]),
    "pg_not_destroyed_native": ([["launcher", "rank 0"], ["launcher", "rank 1"]],
                                ["rank 0", "rank 1"], ["process-group-destroyed-at-exit"]),
    "rank_elsewhere": ([["launcher", "rank 0", "rank 1"], ["launcher", "rank 1"]], ["rank 1"],
                       ["collective-peer-missing", "non-daemon-thread-at-exit"]),
    "escape": ([["launcher", "rank 0"]], ["rank 0"], []),
    "ignore_signals": ([["launcher", "rank 0"], ["launcher", "rank 1"]], ["rank 0", "rank 1"], []),
    "sleep_user": ([["launcher"]], ["launcher"], []),
}


def recorded(name: str) -> Report:
    return Report.load(REPORTS / f"{name}.json")


def labels(report: Report, pids: list[int]) -> list[str]:
    return [report.process(pid).label for pid in pids]  # type: ignore[union-attr]


def summary_lines(found: Diagnosis) -> list[str]:
    return found.summary.splitlines()


def finding(found: Diagnosis, rule: str):
    return next(f for f in found.findings if f.rule == rule)


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_case_chain_roots_and_findings(name):
    report = recorded(name)
    chains, roots, rules = CASES[name]
    found = explain(report)
    assert [labels(report, chain) for chain in found.chains] == chains
    assert labels(report, found.root_causes) == roots
    assert [f.rule for f in found.findings] == rules
    assert 3 <= len(summary_lines(found)) <= 6, found.summary
    assert summary_lines(found)[0].startswith("launcher ")
    for item in found.findings:
        assert item.title and item.explanation and item.advice and item.pids
        assert "{" not in item.explanation + item.advice  # every template variable filled
    # Every thread and every stackless process has a state.
    assert len(found.states) == sum(len(p.threads) or 1 for p in report.processes)


def test_issue_case_names_rank0_wandb_internal_exit_function_and_finish():
    report = recorded("legacy_wandb_rank0")
    found = explain(report)
    rank0, internal = report.rank(0), report.by_role("wandb_internal")[0]
    lines = summary_lines(found)
    assert lines[0] == "launcher waits for rank 0 (ProcessContext.join); rank 1 has exited"
    assert "rank 0" in lines[1] and "_exit_function" in lines[1]
    assert f"wandb internal (pid {internal.pid})" in lines[1]
    assert "atexit" in lines[2]
    assert lines[-1].startswith("fix: call wandb.finish()")
    item = finding(found, "wandb-internal-joined-at-exit")
    assert item.pids == [rank0.pid, internal.pid]
    assert "WANDB_START_METHOD=thread" in item.advice and "0.13" in item.advice
    assert "pytest_spawnhang.integration.clean_exit" in item.advice
    join = next(e for e in found.edges if e.waiter_pid == rank0.pid)
    assert (join.kind, join.target_pid) == ("join", internal.pid)
    assert "_exit_function" in join.detail
    main = next(s for s in found.states if s.pid == internal.pid and s.kind == "wait_message")
    assert main.thread_id in item.threads


def test_group_case_has_one_finding_for_every_rank_and_its_own_internal_process():
    report = recorded("legacy_wandb_group")
    found = explain(report)
    item = finding(found, "wandb-internal-joined-at-exit")
    for rank in (0, 1):
        proc = report.rank(rank)
        child = next(p for p in report.by_role("wandb_internal") if p.ppid == proc.pid)
        assert [proc.pid, child.pid] == [
            p for p in found.chains[rank] if p in (proc.pid, child.pid)]
        assert {proc.pid, child.pid} <= set(item.pids)
    assert "rank 0 and rank 1 finished their work and are in" in found.summary


def test_mismatched_collectives_name_each_rank_and_its_op():
    found = explain(recorded("gloo_mismatch"))
    assert "mismatched collectives: rank 0 in barrier, rank 1 in recv" in found.summary
    details = sorted(e.detail for e in found.edges if e.kind == "collective")
    assert details == ["barrier waits for rank 1, which is in recv",
                       "recv waits for rank 0, which is in barrier"]


def test_recv_waits_for_the_rank_that_should_send_not_for_the_other_receiver():
    report = recorded("gloo_mismatch_3ranks")
    found = explain(report)
    waits = {(labels(report, [e.waiter_pid])[0], labels(report, [e.target_pid])[0])
             for e in found.edges if e.kind == "collective"}
    assert waits == {("rank 0", "rank 1"), ("rank 0", "rank 2"),
                     ("rank 1", "rank 0"), ("rank 2", "rank 0")}


def test_a_rank_that_exited_is_named_as_missing_from_the_collective():
    report = recorded("gloo_mismatch")
    rank1 = report.rank(1)
    rank1.threads, rank1.state = [], "exited"
    found = explain(report)
    assert [f.rule for f in found.findings] == ["collective-peer-missing"]
    assert "rank 0 in barrier, rank 1 has exited" in found.summary
    assert found.root_causes == [rank1.pid]


def test_queue_feeder_is_the_root_thread_and_the_reader_is_named():
    report = recorded("queue_deadlock")
    found = explain(report)
    child = report.rank(0)
    feeder = next(t for t in child.threads if t.name == "QueueFeederThread")
    assert feeder.id in finding(found, "queue-feeder-holds-data").threads
    assert next(s for s in found.states if s.thread_id == feeder.id).kind == "pipe_write"
    assert "its reader, launcher, joins rank 0 before it calls get()" in found.summary


def test_non_daemon_thread_is_named_with_where_it_waits():
    found = explain(recorded("nondaemon_thread"))
    assert ("interpreter shutdown waits for non-daemon thread 'stuck-helper', which is blocked "
            "on a lock or event: Event.wait in wait_forever (nondaemon_thread.py:9)"
            ) in found.summary
    assert finding(found, "non-daemon-thread-at-exit").explanation.count("stuck-helper") == 1


def test_rank_missing_from_a_collective_comes_before_why_it_is_missing():
    found = explain(recorded("rank_elsewhere"))
    lines = summary_lines(found)
    assert lines[1].startswith("rank 0 is in a collective that rank 1 never enters")
    assert "'metrics-flusher'" in lines[3]


def test_child_never_joined_is_not_mistaken_for_wandb():
    found = explain(recorded("unjoined_child"))
    assert "serve (diag_unjoined_child.py:13)" in found.summary
    assert "wandb" not in found.summary


def test_native_frames_name_the_process_group_destructor():
    found = explain(recorded("pg_not_destroyed_native"))
    assert "returned without destroy_process_group()" in found.summary
    assert "~ProcessGroupGloo" in " ".join(s.detail for s in found.states)


def test_plain_sleep_in_user_code_is_reported_as_such_not_as_a_bug():
    found = explain(recorded("sleep_user"))
    assert found.findings == [] and found.edges == []
    assert found.summary.splitlines()[0] == (
        "launcher is sleeping in user code: train_for_a_long_time (sleep_user.py:7) "
        "(kernel: hrtimer_nanosleep)")
    assert "no known hang pattern matched" in found.summary


def test_processes_outside_every_chain_are_listed():
    report = recorded("escape")
    found = explain(report)
    orphan = next(p for p in report.processes if p.role == "other")
    assert f"also alive, waited for by nobody: other (pid {orphan.pid})" in found.summary


def test_without_rules_the_summary_still_tells_the_chain():
    found = explain(recorded("gloo_mismatch_3ranks"), rules=())
    assert found.findings == []
    assert summary_lines(found)[1:] == [
        "rank 0 is in barrier, waiting for rank 1 and rank 2",
        "rank 1 and rank 2 are in recv, waiting for rank 0",
        "no known hang pattern matched: nothing in the tree will wake rank 0, rank 1 and rank 2",
        "the stacks below show where; a rule in rules.toml (docs/diagnosis.md) can name this hang "
        "next time"]
    queue = explain(recorded("queue_deadlock"), rules=())
    assert "rank 0 (thread 'QueueFeederThread') is blocked writing" in queue.summary


def test_many_ranks_make_short_lines_quickly():
    report = recorded("gloo_mismatch_3ranks")
    receiver = report.rank(1)
    for rank in range(3, 256):
        clone = copy.deepcopy(receiver)
        clone.pid, clone.rank = 100_000 + rank, rank
        report.processes.append(clone)
    report.processes[-1].threads, report.processes[-1].state = [], "exited"
    started = time.perf_counter()
    found = explain(report)
    assert time.perf_counter() - started < 2
    assert summary_lines(found)[:2] == [
        "launcher waits for ranks 0-254 (ProcessContext.join); rank 255 has exited",
        "mismatched collectives: rank 0 in barrier, ranks 1-254 in recv, rank 255 has exited"]
    assert len(found.chains) == 64 and found.root_causes == [report.processes[-1].pid]


def test_adding_a_rule_needs_no_code(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('''
[[rule]]
id = "long-training"
title = "training sleeps"
waiter = { state = ["sleep"], frames = ['^train_\\w+ '] }
summary = "{waiter} sleeps in training: {where}"
explanation = "{waiter} {is} asleep."
advice = "Wait longer."
''')
    found = explain(recorded("sleep_user"), rules=load_rules(rules))
    assert [f.rule for f in found.findings] == ["long-training"]
    assert "launcher sleeps in training: user code: train_for_a_long_time" in found.summary


@pytest.mark.parametrize("entry, error", [
    ('waiter = { stat = ["sleep"] }', "unknown keys"),
    ('waiter = { frames = ["(unclosed"] }', "missing"),
    ('waiter = {}\nsummary2 = "x"', "summary2"),
])
def test_a_broken_rule_fails_loudly(tmp_path, entry, error):
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[[rule]]\nid = "bad"\ntitle = "t"\nsummary = "s"\nexplanation = "e"\n'
                     f'advice = "a"\n{entry}\n')
    with pytest.raises(ValueError, match=error):
        load_rules(rules)


def test_a_template_with_an_unknown_variable_fails_loudly(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nid = "bad"\ntitle = "t"\nsummary = "{victim}"\n'
                     'explanation = "e"\nadvice = "a"\n')
    with pytest.raises(ValueError, match="victim"):
        load_rules(rules)


def test_packaged_rules_are_all_documented():
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", DOCS.read_text(), re.MULTILINE))
    assert {r.id for r in load_rules()} <= documented


def test_every_state_kind_reads_as_a_phrase():
    kinds = {p.kind for p in STATE_PATTERNS}
    for name in CASES:
        kinds |= {s.kind for s in explain(recorded(name)).states}
    assert kinds <= set(KIND_TEXT)


def test_the_diagnosis_survives_report_json():
    report = recorded("legacy_wandb_group")
    report.diagnosis = explain(report)
    assert Report.from_dict(copy.deepcopy(report.to_dict())).diagnosis == report.diagnosis


def test_diagnose_never_raises(monkeypatch):
    def broken(report):
        raise RuntimeError("bug")

    monkeypatch.setattr(diagnosis, "explain", broken)
    found = diagnose(recorded("sleep_user"))
    assert found.summary.startswith("diagnosis failed (RuntimeError('bug'))")


# Live runs: the engine calls diagnose() itself; the report it writes carries the diagnosis.

def test_live_collective_mismatch(run_cli):
    pytest.importorskip("torch")
    run = run_cli("gloo_mismatch.py", "2", options=("--timeout", "120", "--stall", "2"))
    assert run.status == HANG, run.stderr
    found = run.report.diagnosis
    assert [f.rule for f in found.findings] == ["collective-mismatch"]
    assert "rank 0 in barrier, rank 1 in recv" in found.summary
    assert "rank 0 in barrier, rank 1 in recv" in run.stderr  # the CLI prints the summary
    assert run.leftovers == []


def test_live_queue_deadlock(run_cli):
    run = run_cli("queue_deadlock.py", options=("--timeout", "120", "--stall", "2"))
    assert run.status == HANG, run.stderr
    found = run.report.diagnosis
    assert [f.rule for f in found.findings] == ["queue-feeder-holds-data"]
    assert labels(run.report, found.chains[0]) == ["launcher", "mp child"]
    assert run.leftovers == []


def test_live_sleep_is_not_a_known_bug(run_cli):
    run = run_cli("sleep_user.py", options=("--timeout", "2"))
    assert run.status == HANG, run.stderr
    assert run.report.diagnosis.findings == []
    assert "is sleeping in user code" in run.report.diagnosis.summary


def _wandb_version() -> str:
    try:
        return metadata.version("wandb")
    except metadata.PackageNotFoundError:
        return "none"


@pytest.mark.skipif(not _wandb_version().startswith("0.10."),
                    reason=f"needs wandb 0.10.x (the issue's hang), found {_wandb_version()}; "
                           "run in .venv-legacy")
def test_live_legacy_wandb_rank0_hang(run_cli):
    # Nothing configured: no deadline, the default detection (docs/stall.md) calls it.
    run = run_cli("diag_wandb_rank0.py", "2", guard_s=180)
    assert run.status == HANG, run.stderr
    report = run.report
    assert (report.trigger, report.timeout_s) == ("stall", None)
    assert report.evidence["rule"] in ("closed wait", "polling without progress")
    found = report.diagnosis
    internal = report.by_role("wandb_internal")[0]
    assert labels(report, found.chains[0]) == ["launcher", "rank 0", "wandb internal"]
    assert [f.rule for f in found.findings] == ["wandb-internal-joined-at-exit"]
    lines = found.summary.splitlines()
    assert "rank 0" in lines[1] and "_exit_function" in lines[1]
    assert f"wandb internal (pid {internal.pid})" in lines[1]
    assert lines[-1].startswith("fix: call wandb.finish()")
    assert run.leftovers == []
