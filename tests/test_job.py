"""A job on two nodes: two ``spawnhang run --job`` harnesses, each over a real torchrun agent
with two gloo ranks, meeting through torchrun's own rendezvous store on loopback (and, where
network namespaces can be made, as two hosts joined by a veth pair)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from helpers import SCENARIOS, processes_with_token

from pytest_spawnhang.job import Coordinator, Membership
from pytest_spawnhang.model import Report

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
HANG = 124
GUARD_S = 180  # a run that has not ended by then is a failure of the test, not a wait


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Node:
    rank: int
    proc: subprocess.Popen
    token: str
    report_dir: Path

    def wait(self) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=GUARD_S)
        return self.proc.returncode, err

    @property
    def merged(self) -> Report:
        return Report.load(self.report_dir / "report.json")

    @property
    def own(self) -> Report:
        return Report.load(self.report_dir / f"node{self.rank}" / "report.json")


class Job:
    """Starts the nodes; on exit kills everything any of them left (by token)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.nodes: list[Node] = []
        self.job_id = uuid.uuid4().hex[:8]

    def start(self, rank: int, port: int, options: tuple[str, ...], *, mode: str = "skip",
              addr: str = "127.0.0.1", netns: tuple[str, str] | None = None) -> Node:
        token = uuid.uuid4().hex
        report_dir = self.tmp_path / f"node{rank}"
        env = dict(os.environ, SPAWNHANG_TEST_TOKEN=token, PYTHONPATH=str(ROOT))
        command = [
            sys.executable, "-m", "pytest_spawnhang", "run", "--job", self.job_id,
            "--report-dir", str(report_dir), *options, "--", *TORCHRUN, "--nnodes", "2",
            "--node-rank", str(rank), "--nproc-per-node", "2", "--master-addr", addr,
            "--master-port", str(port), str(SCENARIOS / "job_ranks.py"), mode,
        ]
        if netns is not None:  # (namespace, its veth): gloo would pick loopback by hostname
            command = ["ip", "netns", "exec", netns[0], *command]
            env["GLOO_SOCKET_IFNAME"] = netns[1]
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        node = Node(rank, proc, token, report_dir)
        self.nodes.append(node)
        return node

    def leftovers(self) -> list[psutil.Process]:
        return [p for node in self.nodes for p in processes_with_token(node.token)]

    def close(self) -> None:
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait()
        for proc in self.leftovers():
            proc.kill()


@pytest.fixture
def job(tmp_path: Path):
    started = Job(tmp_path)
    try:
        yield started
    finally:
        started.close()


def wait_for_rank(node: Node, rank: int) -> psutil.Process:
    """Block until the node's torchrun has started global rank ``rank`` (or the node ended)."""
    while node.proc.poll() is None:
        for proc in processes_with_token(node.token):
            try:
                if proc.environ().get("RANK") == str(rank):
                    return proc
            except psutil.Error:
                continue
        time.sleep(0.1)  # polling /proc for a process that is being started
    raise AssertionError(f"node {node.rank} ended before rank {rank} started")


def assert_same_job_verdict(nodes: list[Node]) -> None:
    """Both nodes hold the same merged report: rank 3 of node 1 never reached the all_reduce."""
    merged = [n.merged for n in nodes]
    # One node called the hang, once every node agreed nothing moved; the other ended
    # because the job told it, long before its own deadline.
    triggers = {n.rank: n.own.trigger for n in nodes}
    assert sorted(triggers.values()) == ["job", "stall"], triggers
    caller = next(n for n in nodes if n.own.trigger == "stall")
    # torchrun's agent re-arms a 0.1 s sleep: polling, without progress, on every node.
    assert caller.own.evidence["rule"] == "polling without progress", caller.own.evidence
    assert caller.own.evidence["nodes_agreed"] is True
    assert max(n.own.duration_s for n in nodes) < 150 / 2
    for report in merged:
        assert report.verdict == "hang"
        assert report.job is not None and report.job.node is None
        assert [n.state for n in report.job.nodes] == ["reported", "reported"]
        assert report.job.root_cause_ranks == [3]
        rank3 = report.rank(3)
        assert rank3 is not None and rank3.node == 1
        assert report.job.collectives[0].op == "all_reduce"
        assert report.job.collectives[0].ranks == [0, 1, 2]
        assert "never arrived: rank 3 (node 1" in report.diagnosis.summary
        assert {p.rank for p in report.by_role("rank")} == {0, 1, 2, 3}
        assert report.survivors == []
        assert report.job.first_node == caller.rank
    assert merged[0].diagnosis.summary == merged[1].diagnosis.summary
    assert merged[0].job == merged[1].job


def run_hang(job: Job, addr: str = "127.0.0.1",
             netns: tuple[tuple[str, str] | None, ...] = (None, None)) -> list[Node]:
    port = free_port()
    # Nothing but a far deadline: the job's detection must end it early.
    first = job.start(0, port, ("--timeout", "150"), addr=addr, netns=netns[0])
    second = job.start(1, port, ("--timeout", "150"), addr=addr, netns=netns[1])
    for node in (first, second):
        status, err = node.wait()
        assert status == HANG, err
    return [first, second]


def test_two_node_hang_on_loopback_gives_one_verdict_on_both_nodes(job):
    nodes = run_hang(job)
    assert_same_job_verdict(nodes)
    # Each node dumped only its own processes; the merge holds both.
    assert {p.rank for p in nodes[1].own.by_role("rank")} == {2, 3}
    assert job.leftovers() == []
    # The same verdict from the nodes' own reports merged afterwards (harnesses that never met).
    out = job.tmp_path / "merged"
    done = subprocess.run(
        [sys.executable, "-m", "pytest_spawnhang", "report", "--merge",
         str(nodes[0].report_dir), str(nodes[1].report_dir / "node1"), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    again = Report.load(out / "report.json")
    caller = next(n.rank for n in nodes if n.own.trigger == "stall")
    assert again.job.root_cause_ranks == [3] and again.job.first_node == caller
    assert "=== node 1 (host " in done.stdout


def test_nodes_agree_to_a_hang_only_when_every_other_node_is_as_quiet(tmp_path):
    """Two coordinators meeting in a directory store: the agreement the detectors ask for."""
    nodes = [Coordinator(Membership("j", rank, 2, "host", job_dir=tmp_path)) for rank in (0, 1)]
    for node in nodes:
        node.start(lambda trigger: None)
        assert node.ready.wait(10) and node.problem is None
    try:
        assert not nodes[0].agree("polling without progress")  # node 1 has said nothing yet
        nodes[1].share("polling", frozenset({"127.0.0.1:2"}))
        nodes[0].share("closed", frozenset({"127.0.0.1:1"}))
        assert nodes[0].addresses() == {"127.0.0.1:2"}
        assert not nodes[0].agree("closed wait")  # node 1 only polls
        assert nodes[0].agree("polling without progress")  # and node 0 claims the call
        nodes[1].share("closed", frozenset({"127.0.0.1:2"}))
        assert nodes[1].addresses() == {"127.0.0.1:1"}
        assert not nodes[1].agree("polling without progress")  # claimed by node 0 already
    finally:
        for node in nodes:
            node.done.set()


@pytest.mark.parametrize(("args", "message"), [
    (("--job", "j", "--node-rank", "0"), "--job needs the node count"),
    (("--job", "j", "--nnodes", "2"), "a job needs this node's rank"),
    (("--job", "j", "--nnodes", "2", "--node-rank", "2"), "outside the job's 2 nodes"),
    (("--job", "j", "--nnodes", "2", "--node-rank", "0"), "nowhere to meet"),
])
def test_job_usage_errors_are_one_line(args, message, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest_spawnhang", "run", "--report-dir", str(tmp_path), *args,
         "--", "true"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_clean_two_node_job_exits_without_noise(job):
    port = free_port()
    nodes = [job.start(rank, port, ("--timeout", "150"), mode="clean") for rank in (0, 1)]
    for node in nodes:
        status, err = node.wait()
        assert status == 0, err
        report = node.merged
        assert (report.verdict, report.exit_code, report.stragglers) == ("exit", 0, [])
        assert report.job is not None and report.job.node == node.rank
        assert not (node.report_dir / f"node{node.rank}").exists()  # nothing to merge
        assert not (node.report_dir / "report.html").exists()
        assert "spawnhang: exit after" in err
        assert "missing:" not in err and "cannot reach" not in err and "reaped" not in err
    assert job.leftovers() == []


def test_killed_harness_is_named_missing(job):
    port = free_port()
    # Node 0's ranks wait on node 1's, whose harness is gone: no node can agree to a hang any
    # more, so the deadline ends it.
    first = job.start(0, port, ("--timeout", "20", "--job-wait", "3"))
    second = job.start(1, port, ("--timeout", "150"))
    wait_for_rank(second, 3)
    second.proc.send_signal(signal.SIGKILL)  # its torchrun and ranks live on, hung
    second.proc.wait()
    status, err = first.wait()
    assert status == HANG, err
    assert first.own.trigger == "deadline"
    report = first.merged
    assert [n.state for n in report.job.nodes] == ["reported", "missing"]
    assert "missing: node 1" in report.diagnosis.summary
    assert {p.node for p in report.processes} == {0}
    assert processes_with_token(first.token) == []


# --- two hosts: network namespaces joined by a veth pair -----------------------------------------

NETNS_ADDRS = ("10.203.0.1", "10.203.0.2")


@pytest.fixture
def two_hosts():
    """Two network namespaces joined by a veth pair, removed afterwards."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("network namespaces need root and iproute2's ip")
    tag = uuid.uuid4().hex[:6]
    names = (f"sh-{tag}-0", f"sh-{tag}-1")
    links = (f"sh{tag}a", f"sh{tag}b")
    made: list[str] = []
    try:
        for name in names:
            if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode:
                pytest.skip("cannot create a network namespace here (ip netns add failed)")
            made.append(name)
        steps = [["ip", "link", "add", links[0], "type", "veth", "peer", "name", links[1]]]
        for name, link, addr in zip(names, links, NETNS_ADDRS, strict=True):
            steps += [["ip", "link", "set", link, "netns", name],
                      ["ip", "-n", name, "addr", "add", f"{addr}/24", "dev", link],
                      ["ip", "-n", name, "link", "set", link, "up"],
                      ["ip", "-n", name, "link", "set", "lo", "up"]]
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        yield tuple(zip(names, links, strict=True))
    finally:
        for name in made:  # deleting a namespace deletes its end of the pair, and so the pair
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_two_node_hang_across_network_namespaces(job, two_hosts):
    nodes = run_hang(job, addr=NETNS_ADDRS[0], netns=two_hosts)
    assert_same_job_verdict(nodes)
    assert job.leftovers() == []
