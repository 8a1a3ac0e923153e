"""torch's own distributed test harness, MultiProcessTestCase, with mismatched collectives:
rank 0 in barrier, rank 1 in recv. The harness's parent polls its ranks' exit codes in a sleep
loop instead of joining them. Run it under ``pytest --spawnhang``."""

import torch
import torch.distributed as dist
from torch.testing._internal.common_distributed import MultiProcessTestCase


class Mismatch(MultiProcessTestCase):
    @property
    def world_size(self) -> int:
        return 2

    def setUp(self) -> None:
        super().setUp()
        self._spawn_processes()

    def test_mismatch(self) -> None:
        dist.init_process_group("gloo", init_method=f"file://{self.file_name}",
                                rank=self.rank, world_size=self.world_size)
        if self.rank == 0:
            dist.barrier()
        else:
            dist.recv(torch.zeros(1), src=0)
