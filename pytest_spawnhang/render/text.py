"""The readable text form of a report: the diagnosis first, then every process's stacks."""

from __future__ import annotations

from ..diagnosis.kinds import is_harness
from ..model import ProcessRecord, Report


def render_report(report: Report) -> str:
    head = [
        f"spawnhang: {report.verdict} ({report.trigger}) after {report.duration_s:.1f}s",
        f"command: {' '.join(report.command)}",
    ]
    if report.exit_code is not None:
        head.append(f"exit code: {report.exit_code}")
    evidence = report.evidence
    if "rule" in evidence:  # how detection called it (docs/stall.md)
        head.append(f"called by: {evidence['rule']}"
                    + (f" ({evidence['cycle']})" if "cycle" in evidence else ""))
    if "not_called_because" in evidence:
        head.append(f"detection did not call it: {evidence['not_called_because']}")
    parts = ["\n".join(head), report.diagnosis.summary]
    if report.failure is not None:
        who = f"rank {report.failure.rank}" if report.failure.rank is not None else "the program"
        parts.append(f"failure in {who}:\n{report.failure.excerpt}")
    for node, procs in _by_node(report):
        if node is not None:  # a job's report: each node's processes under its heading
            parts.append(node)
        parts.extend(render_process(p, _states(report)) for p in procs)
    if report.stragglers:
        parts.append("stragglers reaped after the program ended:\n" + "\n".join(
            f"  pid {s.pid} ({s.role}): {' '.join(s.cmdline)}" for s in report.stragglers))
    if report.survivors:
        parts.append(f"SURVIVORS (could not be killed): {report.survivors}")
    return "\n\n".join(p for p in parts if p) + "\n"


def render_process(proc: ProcessRecord, states: dict[tuple[int, int], str] | None = None) -> str:
    """A process and its threads; ``states`` (the diagnosis's state kind per (pid, thread id))
    names each thread's state in the diagnosis's words; spawnhang's own threads are left out."""
    lines = [f"Process {proc.pid} [{proc.label}] (parent {proc.ppid}): {' '.join(proc.cmdline)}"]
    if proc.dump_error:
        lines.append(f"  not dumped: {proc.dump_error}")
        lines.append(f"  state={proc.state} wchan={proc.wchan} cpu={proc.cpu_s}s")
    for note, text in (("waits not read", proc.waits_error), ("no native frames",
                                                               proc.native_error)):
        if text:
            lines.append(f"  {note}: {text}")
    shown = [t for t in proc.threads if not is_harness(proc, t)]
    if len(shown) < len(proc.threads):
        lines.append(f"  ({len(proc.threads) - len(shown)} thread(s) of spawnhang itself left "
                     "out: they are not part of the program)")
    for thread in shown:
        state = (states or {}).get((proc.pid, thread.id)) or (
            "busy" if thread.active else "idle")
        lines.append(f"  Thread {thread.os_id or thread.id} \"{thread.name}\" ({state})")
        if thread.wait is not None:
            lines.append(f"    kernel: {thread.wait.detail}")
        for frame in thread.frames:
            lines.append(f"      {frame.function} ({frame.short_file or frame.file}:{frame.line})")
            for local in frame.locals or []:
                lines.append(f"          {local.name} = {local.repr}")
    return "\n".join(lines)


def _states(report: Report) -> dict[tuple[int, int], str]:
    return {(s.pid, s.thread_id): s.kind for s in report.diagnosis.states}


def _by_node(report: Report) -> list[tuple[str | None, list[ProcessRecord]]]:
    """The processes grouped by node and host, with a heading; one group without one when the
    report is not a job's."""
    if report.job is None:
        return [(None, report.processes)]
    groups = []
    for node in report.job.nodes or []:
        procs = [p for p in report.processes if p.node == node.node]
        if node.state == "missing":
            groups.append((f"=== node {node.node}: missing (no report) ===", procs))
        else:
            groups.append((f"=== node {node.node} (host {node.host}): {node.verdict} "
                           f"({node.trigger}), {len(procs)} processes ===", procs))
    rest = [p for p in report.processes if p.node not in {n.node for n in report.job.nodes}]
    return groups + ([(f"=== node {report.job.node} (host {report.job.host}) ===", rest)]
                     if rest else [])
