"""Where a job's harnesses meet: torch's TCPStore (the job's own rendezvous store, or one that
node 0's harness hosts), or a directory every node can see. Both offer the three calls the
coordinator needs; keys live under ``spawnhang/<job id>/`` so they never touch the job's own."""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from pathlib import Path
from typing import Protocol

from .membership import Membership

CONNECT_S = 60.0  # the launcher's store appears only once node 0's torchrun has started


class Store(Protocol):
    def first(self, key: str, value: bytes) -> bytes:
        """Set ``key`` unless it is set; returns the value it holds (ours if we were first)."""

    def set(self, key: str, value: bytes) -> None: ...

    def get(self, key: str) -> bytes | None:
        """The value, or None while nobody has set it (never blocks)."""


class TcpStore:
    """A client (or, on node 0 without a launcher's store, the server) of torch's TCPStore."""

    def __init__(self, member: Membership, connect_s: float = CONNECT_S) -> None:
        from torch.distributed import TCPStore  # torch only for a job, and off the main thread

        self.prefix = f"spawnhang/{member.job_id}/"
        hosting = member.host_store and member.node_rank == 0
        self.store = TCPStore(member.store_addr or "127.0.0.1", member.store_port or 0,
                              is_master=hosting, wait_for_workers=False,
                              timeout=_dt.timedelta(seconds=connect_s))

    def first(self, key: str, value: bytes) -> bytes:
        return self.store.compare_set(self.prefix + key, b"", value)

    def set(self, key: str, value: bytes) -> None:
        self.store.set(self.prefix + key, value)

    def get(self, key: str) -> bytes | None:
        key = self.prefix + key
        return self.store.get(key) if self.store.check([key]) else None


class DirStore:
    """Files in a shared directory: one per key, written whole (rename), the first by O_EXCL."""

    def __init__(self, member: Membership) -> None:
        assert member.job_dir is not None
        self.root = Path(member.job_dir) / member.job_id
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key.replace("/", "__")

    def first(self, key: str, value: bytes) -> bytes:
        staged = self._staged(value)
        try:
            os.link(staged, self._path(key))  # atomic, and fails if the key exists
        except FileExistsError:
            pass
        finally:
            os.unlink(staged)
        return self._path(key).read_bytes()

    def set(self, key: str, value: bytes) -> None:
        os.replace(self._staged(value), self._path(key))

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def _staged(self, value: bytes) -> str:
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(value)
        return name


def open_store(member: Membership) -> Store:
    return DirStore(member) if member.job_dir is not None else TcpStore(member)
