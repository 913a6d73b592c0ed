"""Training over several processes: accelerate starts them, the loop averages their gradients.

``accelerate launch`` (or torchrun, or a Slurm script through accelerate) sets ``WORLD_SIZE``
and ``RANK``; :func:`current_processes` then asks accelerate's process state for this process's
place and device, which also sets up the process group (NCCL between GPUs, gloo on CPUs). The
loop keeps its own mixed precision, accumulation and checkpoints and only needs three
collectives from the group: the mean of the gradients after each step (what
``DistributedDataParallel`` computes, here once per step over one flat buffer, so that any loss
function works without wrapping its modules), the mean of the logged losses, and rank 0's
decisions (the step count under a time budget). A single process never imports accelerate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from diffcore.errors import DiffcoreError


@dataclass
class Processes:
    """This process's place among ``world`` training processes (rank 0 of 1 when alone)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _state: object = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def _comm_device(self) -> torch.device:
        import torch.distributed as dist

        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def mean_gradients(self, params: list[torch.Tensor]) -> None:
        """Replace each gradient by its mean over the processes (a missing gradient counts as zero)."""
        if self.world == 1 or not params:
            return
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        dtypes = {g.dtype for g in grads}
        dtype = dtypes.pop() if len(dtypes) == 1 else torch.float32
        flat = torch.cat([g.reshape(-1).to(self._comm_device(), dtype) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(g).to(device=p.device, dtype=g.dtype)
            offset += n

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over the processes (elementwise)."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        buf = values.detach().to(self._comm_device(), torch.float64).clone()
        dist.all_reduce(buf)
        return (buf / self.world).to(values.device)

    def from_main(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every process (decisions that must agree)."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        buf = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.broadcast(buf, src=0)
        return buf.tolist()

    def broadcast_(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite ``tensors`` with rank 0's values."""
        if self.world == 1:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for t in tensors:
                buf = t.detach().to(self._comm_device()).clone()
                dist.broadcast(buf, src=0)
                t.copy_(buf)

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every process's ``tensor`` (same shape everywhere), in rank order, on every process."""
        if self.world == 1:
            return [tensor]
        import torch.distributed as dist

        local = tensor.detach().to(self._comm_device())
        out = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(out, local)
        return [t.cpu() for t in out]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def current_processes(multi: bool | None = None) -> Processes:
    """This process's place: alone unless ``WORLD_SIZE`` > 1 (or ``multi=True``), then through accelerate.

    ``multi=False`` refuses to run under a multi-process launcher (each process would train its
    own copy).
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise DiffcoreError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from None
    if multi is False and world > 1:
        raise DiffcoreError(f"this training was started as {world} processes (WORLD_SIZE) but multi-process training was turned off")
    if world <= 1 and not multi:
        return Processes()
    try:
        from accelerate import PartialState
    except ImportError:
        raise DiffcoreError('multi-process training needs accelerate: pip install "diffcore[jobs]"') from None
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    if state.num_processes != world and world > 1:
        raise DiffcoreError(
            f"accelerate sees {state.num_processes} process(es) but WORLD_SIZE is {world}; start the training with `accelerate launch`"
        )
    return Processes(rank=state.process_index, world=state.num_processes, device=torch.device(state.device), _state=state)


def training_device() -> torch.device:
    """Where this process should train: its accelerator under a multi-process launcher, else CUDA if there is one, else the CPU."""
    processes = current_processes()
    if processes.world > 1:
        return processes.device
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
