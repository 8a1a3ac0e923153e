#!/usr/bin/env bash
# The wheel as a user gets it: a clean venv (no system site-packages), torch, the wheel and
# nothing else, then `pytest --spawnhang` on a two-test suite: an in-process mp.spawn that hangs
# past its marker's deadline (caught, explained, reaped) and a test that passes.
# Usage: scripts/check_wheel.sh dist/pytest_spawnhang-*.whl
set -euo pipefail
wheel=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q torch==2.13.0
"$work/venv/bin/pip" install -q "$wheel"
mkdir "$work/suite"
cat > "$work/suite/test_user.py" <<'PY'
import threading

import pytest
import torch.multiprocessing as mp


def worker(rank):
    if rank == 1:
        threading.Event().wait()  # rank 1 never returns: the launcher waits in join


@pytest.mark.spawnhang(timeout=15)
def test_hangs():
    mp.spawn(worker, nprocs=2)


def test_passes():
    assert 1 + 1 == 2
PY
cd "$work/suite"
set +e
"$work/venv/bin/python" -m pytest --spawnhang -p no:cacheprovider -q test_user.py >out.txt 2>&1
rc=$?
set -e
cat out.txt
fail() { echo "check_wheel: $*" >&2; exit 1; }
[ "$rc" = 1 ] || fail "pytest exited $rc, expected 1 (one test failed)"
grep -q "1 failed, 1 passed" out.txt || fail "expected '1 failed, 1 passed'"
grep -q "^HANG test_user.py::test_hangs" out.txt || fail "no HANG line for test_hangs"
find .spawnhang -name report.json | grep -q . || fail "no report.json under .spawnhang/"
left=$(pgrep -f "$work/venv/bin/python" || true)
[ -z "$left" ] || fail "processes left running: $left"
echo "check_wheel: ok (the hang caught, explained and reaped; the next test passed)"
