"""The HTML report: structure checked with the stdlib's HTML parser on reports of real hang runs,
and one live hang opened in a real (headless) browser.

The reports under ``tests/data/html/<case>/report.json`` were written by ``spawnhang run`` on the
scripts beside them (see each script's docstring; ``escape`` ran ``tests/scenarios/escape.py``).
The diagnosis there is the one the engine wrote at the time: a summary only.
``diagnosis.synthesised.json`` beside a report holds edges, chains, root causes and findings
written BY HAND for those real processes, so that the drawing of each is exercised before the
diagnosis rules produce them; tests that use it say so.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_spawnhang.model import (
    Diagnosis,
    Failure,
    Finding,
    Frame,
    Local,
    ProcessRecord,
    Report,
    Straggler,
    Thread,
    WaitEdge,
)
from pytest_spawnhang.render.html import (
    NODE_H,
    NODE_W,
    render_html,
    wait_edges,
)
from pytest_spawnhang.render.views import process_state

DATA = Path(__file__).parent / "data" / "html"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "report.json").is_file())
SYNTHESISED = sorted(c for c in CASES if (DATA / c / "diagnosis.synthesised.json").is_file())
PAYLOAD = "<script>alert(1)</script>"
ATTRIBUTE_BREAKER = '"><img src=x onerror=alert(1)>'
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    parent: Element | None
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


class Page(HTMLParser):
    """Every element with its attributes and its text, and any tag that closed out of order."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []
        self.misnested: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs), self.open[-1] if self.open else None)
        self.elements.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs), self.open[-1] if self.open else None))

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1].tag == tag:
            self.open.pop()
        else:
            self.misnested.append(tag)

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text_parts.append(data)

    def find(self, tag: str | None = None, cls: str | None = None, within: Element | None = None,
             **attrs: object) -> list[Element]:
        """Elements by tag, by one class, inside another, and by attribute values
        (``data_pid=5`` matches ``data-pid="5"``)."""
        wanted = {name.replace("_", "-"): str(value) for name, value in attrs.items()}
        return [e for e in self.elements
                if (tag is None or e.tag == tag) and (cls is None or cls in e.classes)
                and (within is None or _inside(e, within))
                and all(e.attrs.get(name) == value for name, value in wanted.items())]

    def one(self, tag: str | None = None, cls: str | None = None, within: Element | None = None,
            **attrs: object) -> Element:
        found = self.find(tag, cls, within, **attrs)
        assert len(found) == 1, f"expected one {tag}.{cls} {attrs}, found {len(found)}"
        return found[0]


def _inside(element: Element, container: Element) -> bool:
    parent = element.parent
    while parent is not None and parent is not container:
        parent = parent.parent
    return parent is container


def load_case(name: str, synthesised: bool) -> Report:
    """A recorded report; with ``synthesised``, its diagnosis overlaid by the hand-written one."""
    data = json.loads((DATA / name / "report.json").read_text())
    overlay = DATA / name / "diagnosis.synthesised.json"
    if synthesised and overlay.is_file():
        data["diagnosis"].update(json.loads(overlay.read_text()))
    return Report.from_dict(data)


def parse(report: Report) -> Page:
    page = Page(render_html(report))
    assert page.misnested == [] and [e.tag for e in page.open] == []
    return page


@pytest.mark.parametrize("case", CASES)
def test_every_recorded_process_has_a_node_and_a_section(case: str) -> None:
    report = load_case(case, synthesised=True)
    page = parse(report)
    assert report.processes
    for proc in report.processes:
        node = page.one("g", cls="node", data_pid=proc.pid)
        assert proc.label in node.text
        section = page.one("section", cls="process", id=f"pid-{proc.pid}")
        assert f"pid {proc.pid}" in section.text
        assert " ".join(proc.cmdline) in section.text
        for thread in proc.threads:
            page.one("details", cls="thread", data_thread=thread.os_id or thread.id)


@pytest.mark.parametrize("case", SYNTHESISED)
def test_every_edge_is_drawn_and_listed(case: str) -> None:
    """Diagnosis synthesised by hand (see the module docstring); processes recorded."""
    report = load_case(case, synthesised=True)
    page = parse(report)
    pids = {p.pid for p in report.processes}
    assert report.diagnosis.edges
    for edge in wait_edges(report):
        page.one("li", cls="edge", data_waiter=edge.waiter_pid, data_target=edge.target_pid)
        drawn = page.find("path", cls="wait", data_waiter=edge.waiter_pid,
                          data_target=edge.target_pid)
        assert len(drawn) == (1 if {edge.waiter_pid, edge.target_pid} <= pids else 0)


@pytest.mark.parametrize("case", SYNTHESISED)
def test_root_causes_and_only_they_are_marked(case: str) -> None:
    report = load_case(case, synthesised=True)
    page = parse(report)
    roots = set(report.diagnosis.root_causes)
    assert roots
    for proc in report.processes:
        marked = proc.pid in roots
        node = page.one("g", cls="node", data_pid=proc.pid)
        assert (node.attrs.get("data-root-cause") == "true") is marked
        assert ("root-cause" in page.one("section", id=f"pid-{proc.pid}").classes) is marked
        assert len(page.find("g", cls="badge", data_pid=proc.pid)) == int(marked)


@pytest.mark.parametrize("case", SYNTHESISED)
def test_findings_with_their_advice_and_chains_in_order(case: str) -> None:
    report = load_case(case, synthesised=True)
    page = parse(report)
    articles = page.find("article", cls="finding")
    assert len(articles) == len(report.diagnosis.findings)
    for finding, article in zip(report.diagnosis.findings, articles, strict=True):
        assert article.attrs["data-rule"] == finding.rule
        assert finding.title in article.text and finding.explanation in article.text
        assert finding.advice in page.find("div", cls="advice")[articles.index(article)].text
    chain_items = [e for e in page.find("li") if "→" in e.text]
    for chain, item in zip(report.diagnosis.chains, chain_items, strict=True):
        labels = [report.process(pid).label for pid in chain]
        assert re.search(".*".join(map(re.escape, labels)), item.text)


def test_legacy_wandb_rank0_hang_reads_as_the_issue_describes() -> None:
    """The issue's hang, recorded in wandb 0.10.31: rank 1 has exited, rank 0 waits for the
    wandb internal process (synthesised diagnosis marks it the root cause)."""
    report = load_case("legacy_wandb_rank0", synthesised=True)
    page = parse(report)
    rank0, rank1 = report.rank(0), report.rank(1)
    internal = report.by_role("wandb_internal")[0]
    assert "state-exited" in page.one("g", cls="node", data_pid=rank1.pid).classes
    assert page.one("g", cls="node", data_pid=internal.pid).attrs["data-root-cause"] == "true"
    page.one("path", cls="wait", data_waiter=rank0.pid, data_target=internal.pid)
    # rank 0's own code has returned: what it waits in is the stdlib, and the page says so.
    summary = page.one("summary", within=page.one("details", data_thread=rank0.pid))
    assert "Popen.poll" in summary.text
    assert [e.text for e in page.find("span", cls="flag", within=summary)] == ["idle", "stdlib"]
    assert "wandb.finish()" in page.one("div", cls="advice").text


@pytest.mark.parametrize("case", CASES)
def test_the_engines_own_diagnosis_renders_without_edges_or_findings(case: str) -> None:
    """The diagnosis as recorded: a summary and nothing else. The page says what is missing."""
    report = load_case(case, synthesised=False)
    page = parse(report)
    assert report.diagnosis.summary.splitlines()[0] in page.one("p", cls="summary").text
    assert page.find("path", cls="wait") == [] and page.find("g", cls="badge") == []
    assert "no wait-for edges" in page.one("section", id="tree").text
    assert "No known pattern matched" in page.one("section", id="diagnosis").text


def test_an_empty_report_renders() -> None:
    page = parse(Report(verdict="hang", trigger="cancelled", command=[], duration_s=0.0,
                        started_at=""))
    assert "cancelled" in page.one("h1").text
    assert page.find("section", cls="process") == []


def test_stragglers_and_survivors_are_listed() -> None:
    report = load_case("escape", synthesised=False)
    report.stragglers = [Straggler(4242, ["python", "-c", "pass"], role="worker_child")]
    report.survivors = [report.processes[-1].pid, 4343]
    page = parse(report)
    leftovers = page.one("section", id="leftovers")
    row = page.one("tr", cls="straggler", data_pid=4242, within=leftovers)
    assert "worker child" in row.text and "python -c pass" in row.text
    for pid in report.survivors:
        page.one("span", cls="survivor", data_pid=pid, within=leftovers)
    assert "Left behind" in leftovers.text
    assert parse(load_case("escape", synthesised=False)).find("section", id="leftovers") == []


def test_user_frames_are_found_and_library_frames_dimmed() -> None:
    report = load_case("gloo_barrier_recv", synthesised=False)
    page = parse(report)
    rank0 = report.rank(0)
    main = page.one("details", data_thread=rank0.pid)
    where = page.one("span", cls="where", within=main)
    assert where.text.split() == ["worker", "gloo_barrier_recv.py:15"]
    assert [e.text for e in page.find("span", cls="flag", within=main)] == ["idle"]
    origins = [next(c for c in e.classes if c.startswith("origin-"))
               for e in page.find("li", cls="frame", within=main)]
    assert origins == ["origin-library", "origin-library", "origin-user", "origin-library",
                       "origin-stdlib", "origin-stdlib", "origin-stdlib", "origin-stdlib",
                       "origin-internal"]
    assert "where" in page.find("li", cls="frame", within=main)[2].classes


@pytest.mark.parametrize(("path", "origin"), [
    ("/work/main/train.py", "user"),
    ("/root/.pyenv/versions/3.11.7/lib/python3.11/threading.py", "stdlib"),
    ("/usr/lib64/python3.12/multiprocessing/connection.py", "stdlib"),
    ("/work/.venv/lib/python3.11/site-packages/torch/distributed/c10d.py", "library"),
    ("/usr/lib/python3/dist-packages/wandb/sdk/wandb_run.py", "library"),
    ("<string>", "internal"),
    ("<frozen runpy>", "internal"),
    ("/usr/lib/x86_64-linux-gnu/libc.so.6", "native"),
    ("/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", "native"),
    ("/work/.venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so", "native"),
    ("/home/me/lib/python_tools/run.py", "user"),
])
def test_frame_origin(path: str, origin: str) -> None:
    assert Frame("f", path, 1).origin == origin


@pytest.mark.parametrize(("record", "state"), [
    (ProcessRecord(1, 0, [], state="zombie"), "zombie"),
    (ProcessRecord(1, 0, [], state="exited"), "exited"),
    (ProcessRecord(1, 0, [], state="sleeping", dump_error="timed out"), "not-dumped"),
    (ProcessRecord(1, 0, [], state="sleeping", threads=[Thread(1, "a", active=True)]), "busy"),
    (ProcessRecord(1, 0, [], state="sleeping", threads=[Thread(1, "a")]), "blocked"),
    (ProcessRecord(1, 0, [], state="running"), "busy"),
    (ProcessRecord(1, 0, []), "not-dumped"),
])
def test_process_state(record: ProcessRecord, state: str) -> None:
    assert process_state(record) == state


def test_processes_py_spy_could_not_dump_show_why() -> None:
    report = load_case("wandb_core_rank_stuck", synthesised=False)
    page = parse(report)
    cores = report.by_role("wandb_core")
    assert len(cores) == 2
    for core in cores:
        assert "state-not-dumped" in page.one("g", cls="node", data_pid=core.pid).classes
        section = page.one("section", id=f"pid-{core.pid}")
        assert core.dump_error and core.dump_error in section.text


def hostile(report: Report) -> Report:
    """Every text field that comes from a dumped process or the command line carries markup."""
    proc = report.processes[-1]
    proc.cmdline = [*proc.cmdline, PAYLOAD, ATTRIBUTE_BREAKER]
    proc.role = PAYLOAD  # a report from elsewhere is not bound to our role names
    proc.dump_error = PAYLOAD
    proc.threads = [Thread(7, PAYLOAD, os_id=7, frames=[
        Frame(PAYLOAD, f"/x/{ATTRIBUTE_BREAKER}.py", 1, short_file=PAYLOAD,
              locals=[Local(PAYLOAD, ATTRIBUTE_BREAKER)])])]
    report.command = [PAYLOAD]
    report.cwd = ATTRIBUTE_BREAKER
    report.evidence = {PAYLOAD: ATTRIBUTE_BREAKER}
    report.failure = Failure(excerpt=PAYLOAD, pid=proc.pid)
    report.stragglers = [Straggler(99, [PAYLOAD], role=PAYLOAD)]
    report.diagnosis = Diagnosis(
        summary=PAYLOAD, edges=[WaitEdge(proc.pid, proc.pid, PAYLOAD, ATTRIBUTE_BREAKER)],
        root_causes=[proc.pid], chains=[[report.processes[0].pid, proc.pid]],
        findings=[Finding(PAYLOAD, PAYLOAD, ATTRIBUTE_BREAKER, PAYLOAD, pids=[proc.pid])],
    )
    return report


def test_markup_from_dumped_processes_is_shown_as_text() -> None:
    report = hostile(load_case("gloo_barrier_recv", synthesised=False))
    html = render_html(report)
    page = parse(report)
    assert page.find("script") == [] and page.find("img") == []
    assert PAYLOAD not in html and ATTRIBUTE_BREAKER not in html
    assert page.one("span", cls="tname", within=page.one("details", data_thread=7)).text == PAYLOAD
    assert page.one("pre", cls="failure").text == PAYLOAD
    locations = [e.attrs["title"] for e in page.find("span", cls="loc")]
    assert f"/x/{ATTRIBUTE_BREAKER}.py" in locations  # intact inside an attribute
    assert PAYLOAD in page.one("g", cls="node", data_pid=report.processes[-1].pid).text
    assert page.one("g", cls="node", data_pid=report.processes[-1].pid).attrs["data-root-cause"]


def test_the_page_is_self_contained() -> None:
    html = render_html(load_case("legacy_wandb_rank0", synthesised=True))
    page = Page(html)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & {e.tag for e in
                                                                         page.elements}
    assert all(e.attrs["href"].startswith("#") for e in page.find() if "href" in e.attrs)
    assert not any("src" in e.attrs for e in page.elements)
    style = page.one("style").text
    assert "@import" not in style and "url(" not in style and "@font-face" not in style
    assert "@media (prefers-color-scheme: dark)" in style
    csp = page.one("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp


def replicated_job(ranks: int, workers: int) -> Report:
    """A launcher, ``ranks`` ranks and ``workers`` loader workers per rank, every one a copy of
    a recorded rank of the gloo case with a new pid: the shape of an 8-rank DataLoader job."""
    recorded = load_case("gloo_barrier_recv", synthesised=False)
    launcher, rank = recorded.by_role("launcher")[0], recorded.rank(0)
    processes = [launcher]
    for r in range(ranks):
        rank_pid = 10_000 + 100 * r
        processes.append(ProcessRecord(rank_pid, launcher.pid, rank.cmdline, role="rank", rank=r,
                                       state="sleeping", threads=rank.threads))
        processes += [ProcessRecord(rank_pid + w + 1, rank_pid, rank.cmdline, role="worker_child",
                                    state="sleeping", threads=rank.threads)
                      for w in range(workers)]
    recorded.processes = processes
    recorded.diagnosis.edges = [WaitEdge(launcher.pid, p.pid, "join")
                                for p in processes if p.role == "rank"]
    return recorded


@pytest.mark.parametrize("report", [load_case(c, synthesised=True) for c in CASES]
                         + [replicated_job(8, 8)], ids=[*CASES, "replicated-8x8"])
def test_nodes_do_not_overlap_and_everything_fits_the_drawing(report: Report) -> None:
    page = parse(report)
    svg = page.one("svg", cls="tree")
    width, height = float(svg.attrs["width"]), float(svg.attrs["height"])
    boxes = []
    for node in page.find("g", cls="node"):
        x, y = map(float, re.fullmatch(r"translate\(([\d.]+),([\d.]+)\)",
                                       node.attrs["transform"]).groups())
        assert 0 <= x and x + NODE_W <= width and 0 <= y and y + NODE_H <= height
        boxes.append((x, y))
    for i, (x1, y1) in enumerate(boxes):
        for x2, y2 in boxes[i + 1:]:
            assert abs(x1 - x2) >= NODE_W or abs(y1 - y2) >= NODE_H
    for arrow in page.find("path", cls="wait"):
        for x, y in curve_points(arrow.attrs["d"]):
            assert 0 <= x <= width and 0 <= y <= height


def curve_points(path: str) -> list[tuple[float, float]]:
    """Points along an SVG path of absolute M, L, Q and C commands (the ones arrows use)."""
    points, current = [], (0.0, 0.0)
    for command, args in re.findall(r"([MLQC])([^MLQC]*)", path):
        numbers = [float(n) for n in re.findall(r"-?[\d.]+", args)]
        given = list(zip(numbers[0::2], numbers[1::2], strict=True))
        if command != "M":
            controls = [current, *given]
            for step in range(11):  # de Casteljau: interpolate pairwise down to one point
                t, level = step / 10, controls
                while len(level) > 1:
                    level = [(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
                             for a, b in itertools.pairwise(level)]
                points.append(level[0])
        current = given[-1]
        points.append(current)
    return points


def test_a_wide_job_grows_downwards_not_off_the_screen() -> None:
    """64 loader workers side by side would be 64 boxes wide: they stack under their rank."""
    svg = parse(replicated_job(8, 8)).one("svg", cls="tree")
    assert float(svg.attrs["width"]) < 9 * (NODE_W + 60)
    assert float(svg.attrs["height"]) < 12 * NODE_H * 2


def test_pids_named_by_the_diagnosis_but_missing_from_the_report_get_a_node() -> None:
    report = load_case("gloo_barrier_recv", synthesised=False)
    launcher = report.by_role("launcher")[0]
    report.diagnosis.edges = [WaitEdge(launcher.pid, 424242, "join")]
    page = parse(report)
    assert "ghost" in page.one("g", cls="node", data_pid=424242).classes
    page.one("path", cls="wait", data_waiter=launcher.pid, data_target=424242)
    assert "not in the report" in page.one("li", cls="edge").text


def test_rendering_is_pure() -> None:
    report = load_case("legacy_wandb_rank0", synthesised=True)
    before = report.to_dict()
    assert render_html(report) == render_html(report)
    assert report.to_dict() == before


@pytest.mark.parametrize(("trigger", "words"), [
    ("deadline", "the deadline of 8 s passed"),
    ("stall", "idle and unchanged for 3 s"),
    ("cancelled", "cancelled"),
    ("exit", "exited with status 1"),
])
def test_the_heading_says_what_fired(trigger: str, words: str) -> None:
    report = Report(verdict="hang", trigger=trigger, command=["x"], duration_s=8.0,
                    started_at="", timeout_s=8.0, stall_s=3.0, exit_code=1)
    assert words in parse(report).one("h1").text


# A thread named like markup, in a child its parent joins: a hang with one obvious root cause.
LIVE_HANG = f'''
import multiprocessing as mp
import threading


def stuck():
    thread = threading.Thread(target=threading.Event().wait, name={PAYLOAD!r})
    thread.start()
    thread.join()


if __name__ == "__main__":
    child = mp.get_context("spawn").Process(target=stuck)
    child.start()
    child.join()
'''


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless, offline, with a fresh profile: nothing on this machine or the network helps."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=True)


def png_summary(data: bytes, enough: int = 16) -> tuple[int, int, int]:
    """Width, height and the number of distinct pixel values (counting stops at ``enough``) of
    an 8-bit RGB or RGBA PNG, decoded row by row (PNG filters undone) with the stdlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
    assert header is not None, "no IHDR chunk"
    width, height, depth, colour = header
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format {depth}-bit type {colour}"
    bpp, raw = (4 if colour == 6 else 3), zlib.decompress(bytes(idat))
    stride = width * bpp
    assert len(raw) == height * (stride + 1), "image data does not match the header"
    seen: set[bytes] = set()
    previous = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, up_left = previous[i], (previous[i - bpp] if i >= bpp else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                nearest = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[i] = (line[i] + nearest) & 0xFF
        seen.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp))
        if len(seen) >= enough:
            break
        previous = line
    return width, height, len(seen)


def test_png_summary_tells_a_blank_image_from_a_drawn_one() -> None:
    def png(rows: list[bytes], width: int) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            return (struct.pack(">I", len(body)) + kind + body
                    + struct.pack(">I", zlib.crc32(kind + body)))
        header = struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))

    blank = png([b"\x00" + b"\xff\xff\xff" * 4] * 3, 4)
    assert png_summary(blank) == (4, 3, 1)
    # Sub filter (1): each byte is the difference to the pixel on its left.
    ramp = png([b"\x01" + bytes([10, 10, 10] * 4)] * 3, 4)
    assert png_summary(ramp) == (4, 3, 4)


@pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (CI installs Debian's "
                    "chromium package); the HTML structure is still tested without it")
def test_a_live_hang_report_opens_in_a_real_browser(run_cli, tmp_path: Path) -> None:
    script = tmp_path / "live_hang.py"
    script.write_text(LIVE_HANG)
    run = run_cli(str(script), options=("--stall", "2", "--timeout", "60"))
    assert run.status == 124, run.stderr
    report = run.report
    child = next(p for p in report.processes if p.role != "launcher"
                 and any(t.name == PAYLOAD for t in p.threads))
    # Until the diagnosis names root causes itself, name the child by hand (synthesised).
    if not report.diagnosis.root_causes:
        report.diagnosis.root_causes = [child.pid]
    root = report.diagnosis.root_causes[0]
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(report))

    dom = Page(run_chromium(chromium(), "--dump-dom", page_file.as_uri()).stdout)
    assert dom.find("script") == []
    assert dom.one("g", cls="node", data_pid=root).attrs["data-root-cause"] == "true"
    assert "root-cause" in dom.one("section", id=f"pid-{root}").classes
    assert PAYLOAD in [e.text for e in dom.find("span", cls="tname")]
    for proc in report.processes:
        dom.one("section", id=f"pid-{proc.pid}")

    shot = tmp_path / "report.png"
    run_chromium(chromium(), "--window-size=1280,900", "--hide-scrollbars",
                 f"--screenshot={shot}", page_file.as_uri())
    width, height, colours = png_summary(shot.read_bytes())
    assert (width, height) == (1280, 900)
    assert colours >= 16, "the screenshot is (nearly) one colour: the page did not render"
