"""clean_exit with real processes: real mp.spawn, real gloo, real wandb (offline).

Every scenario runs as its own Python process under a time limit, so a worker that does not exit
fails the test instead of stalling the run. Every process a scenario starts inherits a token in
its environment; whatever still carries it at teardown is killed. The scenarios that run to their
end start together, a few at a time: each spends most of its time importing torch.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import processes_with_token

from pytest_spawnhang.integration import CleanExit, clean_exit

REPO = Path(__file__).resolve().parents[1]
TOKEN_VAR = "SPAWNHANG_INTEGRATION_TOKEN"
HAVE_WANDB = importlib.util.find_spec("wandb") is not None
# Each scenario is a launcher and one or two workers, all importing torch: more at once would only
# queue on this machine's cores.
PARALLEL_RUNS = 3

# The scenarios, in one script: `python scenarios.py NAME OUT_DIR`.
SCENARIOS = textwrap.dedent(
    """
    import logging
    import multiprocessing
    import os
    import signal
    import socket
    import sys
    import threading
    from pathlib import Path

    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    from pytest_spawnhang.integration import clean_exit


    def setup(rank, world_size):
        logging.basicConfig(level=logging.INFO, format=f"rank{rank}: %(message)s")
        if world_size > 1:
            dist.init_process_group("gloo", rank=rank, world_size=world_size)


    def all_reduce_rank(rank):
        total = torch.tensor([rank + 1.0])
        dist.all_reduce(total)
        print(f"rank{rank} sum {total.item()}", flush=True)


    @clean_exit
    def returns(rank, world_size, out):
        setup(rank, world_size)
        all_reduce_rank(rank)
        # The process group is left initialised on purpose: clean_exit must destroy it.


    def context(rank, world_size, out):
        with clean_exit():
            setup(rank, world_size)
            all_reduce_rank(rank)
        print(f"rank{rank} initialised after the block: {dist.is_initialized()}", flush=True)


    @clean_exit(join_timeout=5.0)
    def raises(rank, world_size, out):
        setup(rank, world_size)
        # Both ranks finish connecting before rank 1 fails: otherwise rank 0 may return and
        # close its end while rank 1's gloo handshake is still under way.
        dist.barrier()
        if rank == 1:
            raise ValueError("boom on rank 1")


    def wait_forever(ready):
        if ready is not None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            ready.set()
        threading.Event().wait()


    def start_stuck_children(rank, out):
        # fork: the children need nothing from torch, and start in milliseconds.
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Event()
        children = [
            ctx.Process(target=wait_forever, args=(None,), name="stuck-child"),
            ctx.Process(target=wait_forever, args=(ready,), name="sigterm-ignoring-child"),
        ]
        for child in children:
            child.start()
        # Until the handler is installed, SIGTERM would end the child and skip the SIGKILL path.
        assert ready.wait(timeout=60), "child never installed its SIGTERM handler"
        Path(out, "pids").write_text(" ".join(str(c.pid) for c in children))
        print(f"rank{rank} worker returned", flush=True)


    @clean_exit(join_timeout=0.5, terminate_timeout=0.5)
    def stuck(rank, world_size, out):
        setup(rank, world_size)
        start_stuck_children(rank, out)


    def stuck_without_helper(rank, world_size, out):
        setup(rank, world_size)
        start_stuck_children(rank, out)


    @clean_exit
    def with_wandb(rank, world_size, out):
        import wandb

        setup(rank, world_size)
        wandb.init(project="spawnhang-test", group="DDP")
        wandb.log({"rank": rank})
        all_reduce_rank(rank)
        # No wandb.finish(), as in the issue: clean_exit must finish the run.


    if __name__ == "__main__":
        name, out = sys.argv[1], sys.argv[2]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
        nprocs = 1 if name.startswith("stuck") else 2
        try:
            mp.spawn(globals()[name], args=(nprocs, out), nprocs=nprocs, join=True)
        except mp.ProcessRaisedException as exc:
            print(f"ProcessRaisedException from rank {exc.error_index}:\\n{exc}", flush=True)
        print("launcher done", flush=True)
    """
)


@dataclass
class Finished:
    out: Path
    token: str
    returncode: int
    stdout: str
    stderr: str

    def child_pids(self) -> set[int]:
        """The pids of the children the stuck scenarios started."""
        return {int(pid) for pid in (self.out / "pids").read_text().split()}


class Scenarios:
    """Runs the scenario script, each run in its own directory and with its own token."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.script = root / "scenarios.py"
        self.script.write_text(SCENARIOS)
        self.tokens: list[str] = []

    def _command(self, name: str) -> tuple[list[str], dict[str, str], Path, str]:
        token = uuid.uuid4().hex
        self.tokens.append(token)
        out = self.root / name
        out.mkdir()
        pythonpath = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(pythonpath),
            WANDB_MODE="offline",
            WANDB_DIR=str(out),
            WANDB_SILENT="true",
            PYTHONWARNINGS="ignore",
            **{TOKEN_VAR: token},
        )
        return [sys.executable, str(self.script), name, str(out)], env, out, token

    def run(self, name: str, timeout: float) -> Finished:
        """Run to the end; a run that outlives ``timeout`` raises TimeoutExpired."""
        args, env, out, token = self._command(name)
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
        return Finished(out, token, done.returncode, done.stdout, done.stderr)

    def start(self, name: str) -> tuple[subprocess.Popen[str], Path, str]:
        args, env, out, token = self._command(name)
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True), out, token

    def kill_all(self) -> None:
        for token in self.tokens:
            for proc in processes_with_token(token, TOKEN_VAR):
                proc.kill()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Finished]]]:
    """The scenarios that run to their end, all submitted at once; a test waits for its own."""
    runner = Scenarios(tmp_path_factory.mktemp("finished"))
    names = ["returns", "context", "raises", "stuck"] + (["with_wandb"] if HAVE_WANDB else [])
    pool = ThreadPoolExecutor(max_workers=PARALLEL_RUNS)
    try:
        yield {name: pool.submit(runner.run, name, timeout=120) for name in names}
    finally:
        pool.shutdown(wait=True)
        runner.kill_all()


@pytest.fixture
def scenarios(tmp_path: Path) -> Iterator[Scenarios]:
    runner = Scenarios(tmp_path)
    yield runner
    runner.kill_all()


def read_until(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    """Read the process's stdout until a line contains ``text``; fail after ``timeout`` s."""
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not any(text in line for line in seen):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                pytest.fail(f"no {text!r} within {timeout}s; got {seen}")
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"stdout closed before {text!r}; got {seen}")
            seen.append(line)
    return "".join(seen)


def log_line(stderr: str, text: str) -> str:
    """The one log line that contains ``text``."""
    lines = [line for line in stderr.splitlines() if text in line]
    assert len(lines) == 1, f"{text!r} logged {len(lines)} times:\n{stderr}"
    return lines[0]


def test_import_pulls_in_neither_torch_nor_wandb() -> None:
    code = (
        "import sys, pytest_spawnhang.integration;"
        "print('torch' in sys.modules, 'wandb' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO
    )
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_decorator_forms() -> None:
    def worker(rank: int) -> int:
        return rank * 2

    wrapped = clean_exit(worker)
    assert wrapped(3) == 6
    # mp.spawn pickles the worker by reference: name and module must stay the worker's.
    assert (wrapped.__name__, wrapped.__module__) == (worker.__name__, worker.__module__)
    assert isinstance(clean_exit(join_timeout=1.0), CleanExit)
    with pytest.raises(ValueError):
        clean_exit(join_timeout=-1.0)


def test_worker_that_returns_exits_and_its_group_is_destroyed(finished) -> None:
    done = finished["returns"].result()
    assert done.returncode == 0, done.stderr
    assert "rank0 sum 3.0" in done.stdout and "rank1 sum 3.0" in done.stdout
    assert "launcher done" in done.stdout
    for rank in (0, 1):
        log_line(done.stderr, f"rank{rank}: clean_exit: destroying the default process group")


def test_context_manager_destroys_the_group(finished) -> None:
    done = finished["context"].result()
    assert done.returncode == 0, done.stderr
    assert "rank0 initialised after the block: False" in done.stdout
    assert "rank1 initialised after the block: False" in done.stdout


def test_exception_propagates_to_mp_spawn(finished) -> None:
    done = finished["raises"].result()
    assert done.returncode == 0, done.stderr
    assert "ProcessRaisedException from rank 1" in done.stdout
    assert "ValueError: boom on rank 1" in done.stdout
    # The clean-up ran on the failing rank too, before the exception left it.
    log_line(done.stderr, "rank1: clean_exit: destroying the default process group")


def test_stuck_children_are_terminated_then_killed(finished) -> None:
    done = finished["stuck"].result()
    assert done.returncode == 0, done.stderr
    assert "launcher done" in done.stdout
    terminated = log_line(done.stderr, "clean_exit: terminating")
    assert "stuck-child" in terminated and "sigterm-ignoring-child" in terminated
    killed = log_line(done.stderr, "clean_exit: killing")
    assert "sigterm-ignoring-child" in killed and " stuck-child" not in killed
    pids = done.child_pids()
    assert len(pids) == 2
    # The worker joined them before it exited, so neither can be running now.
    assert not [proc for proc in processes_with_token(done.token, TOKEN_VAR) if proc.pid in pids]


@pytest.mark.skipif(not HAVE_WANDB, reason="wandb is not installed")
def test_wandb_run_is_finished_and_the_worker_exits(finished) -> None:
    done = finished["with_wandb"].result()
    assert done.returncode == 0, done.stderr
    assert "launcher done" in done.stdout
    for rank in (0, 1):
        log_line(done.stderr, f"rank{rank}: clean_exit: finishing wandb run")
    assert len(list((done.out / "wandb").glob("offline-run-*"))) == 2


def test_without_the_helper_a_stuck_child_hangs_the_worker(scenarios: Scenarios) -> None:
    proc, out, token = scenarios.start("stuck_without_helper")
    try:
        read_until(proc, "rank0 worker returned", timeout=60)
        # The worker function has returned; multiprocessing now joins the child for ever.
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
        pids = {int(pid) for pid in (out / "pids").read_text().split()}
        assert pids <= {p.pid for p in processes_with_token(token, TOKEN_VAR)}
    finally:
        # The worker and its child hold the stdout pipe open: end them all before reading it out.
        scenarios.kill_all()
        proc.communicate(timeout=30)
