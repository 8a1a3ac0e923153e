"""Explain a report: where each process waits. (A first cut: the summary names, per process,
the innermost frame of its main thread.)"""

from __future__ import annotations

from ..model import Diagnosis, Report


def diagnose(report: Report) -> Diagnosis:
    lines = [f"verdict: {report.verdict} ({report.trigger})"]
    for proc in report.processes:
        main = next((t for t in proc.threads if t.name == "MainThread"), None)
        if main and main.frames:
            top = main.frames[0]
            where = f"{top.function} ({top.short_file or top.file}:{top.line})"
        else:
            where = proc.dump_error or proc.state or "no stack"
        lines.append(f"{proc.label} (pid {proc.pid}): {where}")
    return Diagnosis(summary="\n".join(lines))
