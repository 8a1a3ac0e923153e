"""Merge the nodes' reports of one job into one report (pure: reports in, a report out).

The merged report holds every node's processes, each marked with its node and host, and is
diagnosed again as one tree: ranks are the job's (torchrun's global ``RANK``), so a collective's
wait-for edges now cross nodes. ``job.collectives`` says which ranks are in which operation and
which known ranks are absent from it; the ranks absent from the operation most ranks are in are
the job's root cause (the rank that skipped a collective), else the diagnosis's root causes.
"""

from __future__ import annotations

import copy

from pytest_spawnhang.diagnosis import diagnose
from pytest_spawnhang.diagnosis.states import classify, rank_ranges
from pytest_spawnhang.model import Job, JobCollective, JobNode, ProcessRecord, Report

PID_SPACE = 1 << 22  # Linux's largest pid: a renumbered pid is node * PID_SPACE + pid
VERDICT_ORDER = ("hang", "interrupted", "fail", "exit", "snapshot")  # the job's, worst first


def merge_reports(reports: list[Report], job_id: str, nnodes: int,
                  first_node: int | None = None) -> Report:
    """One report for the job from its nodes' reports (each with ``job.node`` set)."""
    parts = sorted((copy.deepcopy(r) for r in reports), key=_node_of)
    nodes = {_node_of(r): r for r in parts}
    verdict = min((r.verdict for r in parts), key=VERDICT_ORDER.index)
    if first_node is None:  # merged afterwards: the node that fired by itself, if one did
        first_node = next((n for n, r in nodes.items() if r.trigger not in ("job", "exit")), None)
    lead = nodes.get(first_node) or next(r for r in parts if r.verdict == verdict)
    merged = Report(
        verdict=verdict, trigger=lead.trigger, command=lead.command,
        duration_s=max(r.duration_s for r in parts), started_at=min(r.started_at for r in parts),
        cwd=lead.cwd, exit_code=lead.exit_code, timeout_s=lead.timeout_s, stall_s=lead.stall_s,
        failure=next((r.failure for r in parts if r.failure is not None), None),
        evidence=dict(lead.evidence), timings=dict(lead.timings),
    )
    merged.processes = _join_processes(parts)
    for part in parts:
        merged.stragglers += part.stragglers
        merged.survivors += part.survivors
    merged.job = Job(
        id=job_id, nnodes=nnodes, first_node=first_node if first_node in nodes else None,
        nodes=[JobNode(n, nodes[n].job.host if nodes[n].job else "", "reported",
                       nodes[n].verdict, nodes[n].trigger) if n in nodes
               else JobNode(n, state="missing") for n in range(nnodes)],
    )
    if verdict in ("hang", "interrupted", "snapshot"):
        merged.diagnosis = diagnose(merged)
        merged.job.collectives = collectives(merged)
        merged.job.root_cause_ranks = _root_cause_ranks(merged)
    else:
        merged.diagnosis = lead.diagnosis
    merged.diagnosis.summary = "\n".join(
        [*job_lines(merged), merged.diagnosis.summary]).strip()
    return merged


def _node_of(report: Report) -> int:
    if report.job is None or report.job.node is None:
        raise ValueError("not a node's report: it has no job.node (was it run with --job?)")
    return report.job.node


def _join_processes(parts: list[Report]) -> list[ProcessRecord]:
    """Every node's processes; a pid two nodes share is renumbered (its own kept in local_pid),
    with its ppid, so the tree and the diagnosis stay per node."""
    counts: dict[int, int] = {}
    for part in parts:
        for proc in part.processes:
            counts[proc.pid] = counts.get(proc.pid, 0) + 1
    joined = []
    for part in parts:
        node = _node_of(part)
        mine = {p.pid for p in part.processes}
        for proc in part.processes:
            proc.node = node
            if counts[proc.pid] > 1:
                proc.local_pid, proc.pid = proc.pid, node * PID_SPACE + proc.pid
            if proc.ppid in mine and counts.get(proc.ppid, 0) > 1:
                proc.ppid = node * PID_SPACE + proc.ppid
            joined.append(proc)
    return joined


def collectives(report: Report) -> list[JobCollective]:
    """Which ranks are in which collective (main thread), largest group first; ``absent``: the
    job's other known ranks."""
    scene = classify(report)
    ranks = {p.rank: p for p in report.by_role("rank") if p.rank is not None}
    ops: dict[str, list[int]] = {}
    for rank, proc in sorted(ranks.items()):
        reading = scene.reading(scene.main_node(proc.pid))
        if reading.state.kind == "collective" and (op := reading.fields.get("op")):
            ops.setdefault(op, []).append(rank)
    found = [JobCollective(op, members, sorted(set(ranks) - set(members)))
             for op, members in ops.items()]
    return sorted(found, key=lambda c: (-len(c.ranks), c.op))


def _root_cause_ranks(report: Report) -> list[int]:
    if report.job and report.job.collectives and report.job.collectives[0].absent:
        main = report.job.collectives[0]
        if len(main.ranks) > len(main.absent):
            return main.absent
    by_pid = {p.pid: p for p in report.processes}
    return sorted({by_pid[pid].rank for pid in report.diagnosis.root_causes
                   if pid in by_pid and by_pid[pid].rank is not None})


def where(report: Report, ranks: list[int]) -> str:
    """"rank 3 (node 1, host h)", ranks of one node together."""
    by_node: dict[tuple[int | None, str | None], list[int]] = {}
    for rank in ranks:
        proc = report.rank(rank)
        key = (proc.node, proc.host) if proc else (None, None)
        by_node.setdefault(key, []).append(rank)
    return "; ".join(f"{rank_ranges(rs)} (node {node}, host {host})" if node is not None
                     else rank_ranges(rs) for (node, host), rs in by_node.items())


def job_lines(report: Report) -> list[str]:
    """The job's lines of the summary: who called it, who is missing, the collective, the root
    cause and its node."""
    job = report.job
    assert job is not None
    reported = [n for n in job.nodes if n.state == "reported"]
    lines = [f"job {job.id}: {len(reported)} of {job.nnodes} nodes reported"
             + (f"; node {job.first_node} called it ({report.trigger})"
                if job.first_node is not None else "")]
    if missing := [n.node for n in job.nodes if n.state == "missing"]:
        lines.append(f"missing: node{'s' if len(missing) > 1 else ''} "
                     f"{', '.join(map(str, missing))} (its harness died, never joined, or could "
                     "not reach the others); its processes are not in this report")
    if job.collectives:
        main = job.collectives[0]
        line = f"{rank_ranges(main.ranks)} {'are' if len(main.ranks) > 1 else 'is'} in {main.op}"
        if main.absent:
            line += f"; never arrived: {where(report, main.absent)}"
        lines.append(line)
    if job.root_cause_ranks:
        lines.append(f"root cause: {where(report, job.root_cause_ranks)}")
    return lines
