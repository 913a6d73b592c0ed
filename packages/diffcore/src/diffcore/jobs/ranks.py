"""Which process this is: rank and world size, from accelerate when a launcher started us.

``accelerate launch`` (or torchrun, or Slurm through accelerate) sets ``WORLD_SIZE`` and
``RANK``; the job then asks accelerate's :class:`~accelerate.PartialState` for its place and
uses its barrier. A plain ``diffcore run`` is rank 0 of 1 and never imports accelerate.
Item ``i`` (in key order) belongs to rank ``i % world``, so no two processes write one file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from diffcore.errors import DiffcoreError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    barrier: Callable[[], None] = lambda: None
    close: Callable[[], None] = lambda: None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This process's items: every ``world``-th one, starting at ``rank``."""
        return items[self.rank :: self.world]


def current_ranks() -> Ranks:
    """Rank 0 of 1 unless ``WORLD_SIZE`` > 1, in which case accelerate must be installed."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise DiffcoreError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from None
    if world <= 1:
        return Ranks()
    try:
        from accelerate import PartialState
    except ImportError:
        raise DiffcoreError(
            f'this job was started as {world} processes (WORLD_SIZE), which needs accelerate: pip install "diffcore[jobs]"'
        ) from None
    import torch

    # Without a GPU, accelerate's multi-process launch runs on CPU with the gloo backend.
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    if state.num_processes != world:
        raise DiffcoreError(
            f"accelerate sees {state.num_processes} process(es) but WORLD_SIZE is {world}; start the job with `accelerate launch`"
        )

    def close():
        if state.use_distributed:
            state.destroy_process_group()

    return Ranks(state.process_index, state.num_processes, state.wait_for_everyone, close)
