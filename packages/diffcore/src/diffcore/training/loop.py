"""One training loop for every fine-tuning in diffcore and its plugins: :func:`fit`.

The caller brings the loss: ``loss_fn(step, generator)`` returns a scalar tensor (or a mapping
with ``"loss"`` and other numbers to log), drawing whatever it needs from ``generator``. The
loop owns everything else: the optimiser (AdamW by default, Loshchilov & Hutter 2019), the
learning rate (linear warm-up, then cosine or constant: :func:`~diffcore.training.lr_factor`),
an exponential moving average (:class:`~diffcore.training.EMA`), gradient accumulation, mixed
precision (bf16 autocast on CUDA or the CPU; fp16 with a gradient scaler on CUDA), gradient
clipping, a progress bar, a time budget, several processes (:mod:`diffcore.training.processes`),
and checkpoints that resume exactly where a killed run stopped.

Each step: set the learning rate; for each of ``grad_accum`` micro-batches, run ``loss_fn`` under
autocast and back-propagate ``loss / grad_accum``; average the gradients over the processes;
clip; step the optimiser; update the EMA. Per-step losses stay on the device until a log step
(every ``log_every`` steps), so the loop does not wait for the device at each step.

Resuming: with ``checkpoint_dir`` and ``checkpoint_every`` the loop saves the trainable
parameters, the optimiser state, the EMA, the step, the loss curve and the states of
``generator`` and of torch's global generators (for dropout) every ``checkpoint_every`` steps and
at the end (:mod:`diffcore.training.checkpoint`). ``resume=True`` restores the newest checkpoint,
and the resumed run then takes the same steps, bit for bit on the CPU, as a run that was never
stopped. ``loss_fn`` must therefore take its randomness from ``generator`` (or torch's global
generator) and its data from ``step``, not from state of its own.

Time budget (``max_minutes``): every few dozen steps the speed of the last ones is measured and
the step count set so that the run ends in time (never above ``steps``; the cosine follows the
current count); a run that still overruns stops early with a checkpoint.

>>> import torch
>>> w = torch.nn.Parameter(torch.zeros(3))
>>> target = torch.tensor([1.0, -2.0, 0.5])
>>> record = fit(lambda step, g: ((w - target) ** 2).sum(), [("w", w)], steps=200, lr=0.05,
...              generator=torch.Generator().manual_seed(0), progress=False)
>>> record.steps, record.losses[-1] < 1e-4 < record.losses[0]
(200, True)
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diffcore.errors import DiffcoreError
from diffcore.training.checkpoint import latest_checkpoint, restore_training_state, rng_states, save_checkpoint, training_state
from diffcore.training.ema import EMA
from diffcore.training.lr_schedule import check_lr_schedule, lr_factor
from diffcore.training.parameters import named_tensors
from diffcore.training.processes import current_processes
from diffcore.training.progress import TrainingProgress

OPTIMIZERS = ("adamw", "adam", "sgd")
AMP = (None, "bf16", "fp16")


@dataclass
class TrainingRecord:
    """What :func:`fit` did.

    Attributes:
        steps: optimiser steps done, those before a resume included; steps_planned: ``steps``.
        losses: the loss of every step (the mean over its micro-batches and processes).
        logs: the other numbers ``loss_fn`` returned, one list per name, per step.
        stopped_early: the time budget ran out before the (budget-adjusted) last step.
        resumed_from: the step the run resumed at, or None.
        train_time_s, iterations_per_s: time and speed of this call's steps.
        device, device_name, amp, world: where and how it ran (``world`` processes).
        ema: the :class:`EMA` passed in, updated; checkpoint: the newest checkpoint written.
    """

    steps: int
    steps_planned: int
    losses: list[float]
    logs: dict[str, list[float]]
    stopped_early: bool
    resumed_from: int | None
    train_time_s: float
    iterations_per_s: float | None
    device: str
    device_name: str
    amp: str | None
    world: int
    ema: EMA | None = None
    checkpoint: Path | None = None


def device_name(device: torch.device) -> str:
    """A readable name of the device: the GPU's model, or the CPU's model and thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu} ({torch.get_num_threads()} threads)"


@contextlib.contextmanager
def cuda_speed_flags(device: torch.device, enabled: bool = True):
    """TF32 matmuls and cuDNN autotuning on CUDA for the duration of the block (restored after)."""
    if not enabled or device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


def _make_optimizer(optimizer, tensors: list[torch.Tensor], lr: float, betas, weight_decay: float, device: torch.device):
    if callable(optimizer):
        opt = optimizer(tensors)
        if not isinstance(opt, torch.optim.Optimizer):
            raise DiffcoreError(f"optimizer factory returned {type(opt).__name__}; expected a torch.optim.Optimizer")
        return opt
    fused = {"fused": True} if device.type == "cuda" else {}
    if optimizer == "adamw":
        return torch.optim.AdamW(tensors, lr=lr, betas=tuple(betas), weight_decay=weight_decay, **fused)
    if optimizer == "adam":
        return torch.optim.Adam(tensors, lr=lr, betas=tuple(betas), weight_decay=weight_decay, **fused)
    if optimizer == "sgd":
        return torch.optim.SGD(tensors, lr=lr, weight_decay=weight_decay)
    raise DiffcoreError(
        f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)} or a callable params -> torch.optim.Optimizer"
    )


def _split(out) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss and the other logged numbers of what ``loss_fn`` returned."""
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise DiffcoreError(f"loss_fn returned a mapping without 'loss' (keys: {', '.join(map(str, out))})")
        loss = out["loss"]
        logs = {str(k): torch.as_tensor(v).detach().float().mean() for k, v in out.items() if k != "loss"}
    else:
        loss, logs = out, {}
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise DiffcoreError(f"loss_fn must return a scalar tensor (or a mapping with one under 'loss'), got {type(loss).__name__}")
    return loss.reshape(()), logs


def fit(
    loss_fn: Callable[[int, torch.Generator], Any],
    params,
    *,
    steps: int,
    generator: torch.Generator,
    optimizer: str | Callable = "adamw",
    lr: float = 1e-4,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    warmup: int = 0,
    ema: EMA | None = None,
    grad_accum: int = 1,
    amp: str | None = None,
    grad_clip: float | None = None,
    max_minutes: float | None = None,
    checkpoint_dir=None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    keep_checkpoints: int = 1,
    progress: bool | str = True,
    name: str = "training",
    console=None,
    log_every: int | None = None,
    callback: Callable[[int, float, dict[str, float]], None] | None = None,
    cuda_fast: bool = False,
    multi_process: bool | None = None,
) -> TrainingRecord:
    """Minimise ``loss_fn`` over ``params`` for ``steps`` optimiser steps; see the module docstring.

    Args:
        loss_fn: ``loss_fn(step, generator) -> loss`` (a scalar tensor, or a mapping with
            ``"loss"`` and other numbers to log), called ``grad_accum`` times per step.
        params: what trains: ``(name, parameter)`` pairs (what :func:`~diffcore.training.train_only`
            returns), a module (its parameters that require gradients), or tensors. Each must
            require gradients; names key the checkpoints.
        steps: optimiser steps in all (a resumed run counts the steps before it).
        generator: every random draw of ``loss_fn``; each process of a multi-process run
            re-seeds it with ``initial_seed() + rank``.
        optimizer: ``"adamw"``, ``"adam"``, ``"sgd"`` (with ``lr``, ``betas``, ``weight_decay``;
            fused on CUDA) or a callable ``tensors -> torch.optim.Optimizer``.
        lr_schedule, warmup: ``"cosine"`` or ``"constant"`` after ``warmup`` linear steps.
        ema: an :class:`EMA` to update after each step (and to checkpoint).
        grad_accum: micro-batches per step; amp: ``None``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        grad_clip: the largest gradient norm, or None.
        max_minutes: fit the run into this many minutes (see the module docstring).
        checkpoint_dir, checkpoint_every, resume, keep_checkpoints: checkpoints (see the module
            docstring); without ``resume`` a folder that already holds checkpoints is refused.
        progress: ``True`` (a bar on a terminal, log lines otherwise), ``"log"`` or ``False``.
        name: the run's name in progress lines and errors; log_every: steps between log points
            (default 25 on the CPU, 100 on CUDA).
        callback: ``callback(step, loss, logs)`` for every step (1-based), called in order at
            each log point.
        cuda_fast: TF32 matmuls and cuDNN autotuning on CUDA (faster, not bit-reproducible).
        multi_process: ``None`` follows the launcher (``WORLD_SIZE``); ``True`` requires
            accelerate's process state; ``False`` refuses a multi-process launch.
    """
    pairs = named_tensors(params)
    if not pairs:
        raise DiffcoreError("fit got no parameters to train")
    frozen = [n for n, p in pairs if not p.requires_grad]
    if frozen:
        raise DiffcoreError(
            f"parameter {frozen[0]!r} does not require grad; select what trains with diffcore.training.train_only(prior, kind)"
        )
    if not isinstance(steps, int) or steps < 1:
        raise DiffcoreError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(grad_accum, int) or grad_accum < 1:
        raise DiffcoreError(f"grad_accum must be a positive integer, got {grad_accum!r}")
    if amp not in AMP:
        raise DiffcoreError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    if not isinstance(generator, torch.Generator):
        raise DiffcoreError("fit needs an explicit generator=torch.Generator(...).manual_seed(seed)")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise DiffcoreError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    if checkpoint_dir is None and (checkpoint_every is not None or resume):
        raise DiffcoreError("checkpoint_every and resume need checkpoint_dir")
    check_lr_schedule(lr_schedule)
    tensors = [p for _, p in pairs]
    device = tensors[0].device
    if amp == "fp16" and device.type != "cuda":
        raise DiffcoreError("amp='fp16' needs CUDA (it scales the loss for float16 gradients); use amp='bf16' on the CPU")
    processes = current_processes(multi_process)
    opt = _make_optimizer(optimizer, tensors, lr, betas, weight_decay, device)
    base_lrs = [group["lr"] for group in opt.param_groups]
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)) if amp else contextlib.nullcontext
    )
    log_every = int(log_every or (100 if device.type == "cuda" else 25))

    losses: list[float] = []
    logs: dict[str, list[float]] = {}
    step, total, resumed_from, time_before = 0, steps, None, 0.0
    latest = latest_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    if latest is not None and not resume:
        raise DiffcoreError(
            f"{checkpoint_dir} already holds checkpoints ({latest.name}); pass resume=True to continue that run or choose another folder"
        )
    if latest is not None:
        meta = restore_training_state(latest, pairs, opt, ema, scaler, processes, generator, device)
        step = resumed_from = int(meta["step"])
        losses, logs = list(meta["losses"]), {k: list(v) for k, v in meta["logs"].items()}
        time_before = float(meta.get("train_time_s", 0.0))
    elif processes.world > 1:
        generator.manual_seed(generator.initial_seed() + processes.rank)
        processes.broadcast_(tensors + (list(ema.tensors.values()) if ema is not None else []))

    pending: list[torch.Tensor] = []
    pending_logs: list[dict[str, torch.Tensor]] = []
    last_checkpoint: list[Path | None] = [latest]

    def flush() -> None:
        """Bring the pending losses to the host (mean over the processes), check them, log them."""
        if not pending:
            return
        values = processes.mean(torch.stack(pending).double()).tolist()
        first = len(losses) + 1
        keys = sorted({k for entry in pending_logs for k in entry})
        for key in keys:
            column = torch.stack([entry.get(key, torch.tensor(float("nan"), device=device)).to(device) for entry in pending_logs])
            logs.setdefault(key, [float("nan")] * (first - 1)).extend(processes.mean(column.double()).tolist())
        losses.extend(values)
        for key in logs:
            logs[key].extend([float("nan")] * (len(losses) - len(logs[key])))
        pending.clear()
        pending_logs.clear()
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise DiffcoreError(f"{name}: the loss became {value} at step {first + offset}; lower the learning rate")
        if callback is not None:
            for offset, value in enumerate(values):
                callback(first + offset, value, {k: logs[k][first + offset - 1] for k in logs})

    def checkpoint() -> None:
        flush()
        rng = rng_states(processes, generator, device)  # every process takes part
        if processes.main:
            tensors, meta = training_state(pairs, opt, ema, scaler, rng)
            meta.update(step=step, total=total, steps=steps, name=name, world=processes.world, losses=losses, logs=logs)
            meta["train_time_s"] = time_before + (time.perf_counter() - train_start)
            last_checkpoint[0] = save_checkpoint(checkpoint_dir, step, tensors, meta, keep=keep_checkpoints)
        processes.barrier()

    stopped_early = False
    budget_end = None
    check_every = 50 if device.type == "cuda" else 25
    with cuda_speed_flags(device, cuda_fast), TrainingProgress(name, total, progress if processes.main else False, console) as bar:
        train_start = time.perf_counter()
        budget_end = None if max_minutes is None else train_start + max_minutes * 60 - 5.0  # a few seconds to save
        if resumed_from:
            bar.start_at(resumed_from)
        mark = None  # (step, time) where the current speed measurement started
        first_step = step
        while step < total:
            if budget_end is not None and step % check_every == 0 and step - first_step >= 10:
                # fit the run into the budget at the speed of the last few dozen steps (the first ten,
                # with cuDNN autotuning, are not counted); the count can go down or back up
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                now = time.perf_counter()
                if mark is not None:
                    per_step = (now - mark[1]) / (step - mark[0])
                    total = max(step + 1, min(steps, step + int((budget_end - now) / per_step)))
                total = int(processes.from_main([float(total)])[0])
                mark = (step, now)
            factor = lr_factor(step, total, warmup, lr_schedule)
            for group, base in zip(opt.param_groups, base_lrs):
                group["lr"] = base * factor

            opt.zero_grad(set_to_none=True)
            step_loss, step_logs = None, {}
            for _ in range(grad_accum):
                with autocast():
                    loss, extra = _split(loss_fn(step, generator))
                part = loss / grad_accum if grad_accum > 1 else loss
                (scaler.scale(part) if scaler is not None else part).backward()
                value = loss.detach()
                value = value.float() if value.dtype in (torch.float16, torch.bfloat16) else value
                step_loss = value if step_loss is None else step_loss + value
                for key, v in extra.items():
                    step_logs[key] = v if key not in step_logs else step_logs[key] + v
            if grad_accum > 1:
                step_loss = step_loss / grad_accum
                step_logs = {k: v / grad_accum for k, v in step_logs.items()}
            processes.mean_gradients(tensors)
            if scaler is not None:
                scaler.unscale_(opt)
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(tensors, grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            if ema is not None:
                ema.update(step)
            pending.append(step_loss)
            pending_logs.append(step_logs)
            step += 1
            if step % log_every == 0 or step == total:
                flush()
                bar.update(step, total, losses[-1], time.perf_counter() - train_start, step - first_step)
            if checkpoint_every is not None and step % checkpoint_every == 0 and step < total:
                checkpoint()
            if budget_end is not None and step < total:
                late = time.perf_counter() > budget_end + 5.0
                if processes.world > 1:
                    late = step % check_every == 0 and bool(processes.from_main([float(late)])[0])
                if late:
                    stopped_early = True  # slowed down after the last measurement (another job?): keep what we have
                    break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        flush()
        train_time = time.perf_counter() - train_start
        if checkpoint_dir is not None:
            checkpoint()

    done_here = step - first_step
    return TrainingRecord(
        steps=step,
        steps_planned=steps,
        losses=losses,
        logs=logs,
        stopped_early=stopped_early,
        resumed_from=resumed_from,
        train_time_s=train_time,
        iterations_per_s=done_here / train_time if train_time > 0 and done_here else None,
        device=str(device),
        device_name=device_name(device),
        amp=amp,
        world=processes.world,
        ema=ema,
        checkpoint=last_checkpoint[0],
    )
