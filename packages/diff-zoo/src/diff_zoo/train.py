"""The training loop of every zoo prior: DDPM with epsilon prediction (Ho et al. 2020, Algorithm 1).

Each step draws a batch of training images ``x0`` (randomly flipped where the recipe allows),
steps ``i`` uniform in ``{0, ..., T-1}`` and noise ``eps ~ N(0, I)``, forms
``x_t = sqrt(abar_i) x0 + sqrt(1 - abar_i) eps`` with diffusers' own ``alphas_cumprod``, and
minimises ``|eps - eps_theta(x_t, i, y)|^2`` with AdamW. Class-conditional recipes replace a
share ``label_dropout`` of the labels by the null class ``n_classes`` (classifier-free guidance,
Ho & Salimans 2022). The learning rate warms up linearly, then follows a cosine to zero (or
stays constant); an exponential moving average of the weights, with the usual warm-up
``min(decay, (1 + n) / (10 + n))``, is what gets saved.

The output folder is a normal diffusers pipeline folder (``DDIMPipeline.save_pretrained``:
``model_index.json``, ``unet/``, ``scheduler/``) that diffcore's diffusers adapter loads, plus
``recipe.json``: the recipe, seed, iterations, batch size, wall time, device, versions and final
loss. With ``weights_dtype="float16"`` the weights file stores float16 values (half the size);
they load back as float32.

Determinism: on the CPU the same recipe, seed and iteration count give bit-identical weights
(every random draw comes from one seeded generator; the network is initialised under the seed).
On CUDA, bf16 autocast and cuDNN's algorithm choice make runs close but not identical.
``max_minutes`` fits the run into a time budget (data building included): every few dozen
steps the speed of the last ones is measured and the iteration count is set so that the run
ends in time (never above the planned count); the learning rate's cosine follows the current
count. Parallel runs that share a GPU thus adapt when one of them finishes. That makes the count
depend on the machine; ``recipe.json`` records the count used, and ``iterations=`` reproduces
it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from diff_zoo import data as zoo_data
from diff_zoo.recipes import Recipe
from diffcore.conversions import training_target
from diffcore.errors import DiffcoreError

RECORD = "recipe.json"
WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of ``total``: linear warm-up, then cosine to 0 or constant.

    >>> [round(lr_factor(s, 10, 2, "cosine"), 3) for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.038]
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = (step - warmup) / (total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def ema_decay(step: int, decay: float) -> float:
    """EMA decay after ``step`` updates, warmed up as ``min(decay, (1 + n) / (10 + n))``."""
    return min(decay, (1 + step) / (10 + step))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu} ({torch.get_num_threads()} threads)"


def build_unet(recipe: Recipe, seed: int):
    """The recipe's ``UNet2DModel``, initialised under ``seed`` without touching the global RNG."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(**recipe.unet.diffusers_config(recipe.n_classes))


def save_pipeline(unet, recipe: Recipe, folder: Path) -> None:
    """Write ``unet`` (on the CPU) and the recipe's scheduler as a ``DDIMPipeline`` folder."""
    from diffusers import DDIMPipeline, DDIMScheduler
    from safetensors.torch import load_file, save_file

    scheduler = DDIMScheduler(**recipe.schedule.scheduler_config())
    DDIMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder, safe_serialization=True)
    if recipe.weights_dtype == "float16":
        path = folder / WEIGHTS
        state = {k: v.to(torch.float16).contiguous() for k, v in load_file(str(path)).items()}
        save_file(state, str(path), metadata={"format": "pt"})
    for file in folder.rglob("*"):  # package data: readable by everyone
        if file.is_file():
            file.chmod(0o644)


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move a finished ``tmp`` folder to ``out``, replacing an earlier zoo training output only."""
    if out.exists():
        if not (out / RECORD).is_file():
            raise DiffcoreError(f"{out} exists and is not a zoo training output (no {RECORD}); choose another --out")
        shutil.rmtree(out)
    tmp.rename(out)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / RECORD).is_file())):
        raise DiffcoreError(f"{out} exists and is not an empty folder or an earlier zoo training output; choose another --out")


@contextlib.contextmanager
def _cuda_speed_flags(device: torch.device):
    """TF32 matmuls and cuDNN autotuning on CUDA for the duration of training (restored after)."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


class _Progress:
    """A rich progress bar (optional) plus a log line every tenth of the run."""

    def __init__(self, name: str, total: int, enabled: bool, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.name, self.total, self.enabled = name, total, enabled
        self.bar = None
        self._next_log = 0

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(f"zoo:{self.name}", total=self.total, loss="-")
        return self

    def update(self, step: int, total: int, loss: float | None, elapsed: float):
        self.total = total
        if self.bar is not None:
            self.bar.update(self.task, completed=step, total=total, loss="-" if loss is None else f"{loss:.4f}")
        if step >= self._next_log and loss is not None:
            rate = step / elapsed if elapsed > 0 else float("nan")
            if not self.enabled or not self.console.is_terminal:
                self.console.print(f"zoo:{self.name} step {step}/{total} loss {loss:.4f} {rate:.1f} it/s")
            self._next_log = step + max(1, total // 10)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def train(
    recipe: Recipe,
    out,
    *,
    device="cpu",
    seed: int = 0,
    iterations: int | None = None,
    batch_size: int | None = None,
    max_minutes: float | None = None,
    amp: bool = True,
    progress: bool = True,
    console=None,
    on_ready=None,
) -> dict[str, Any]:
    """Train ``recipe`` and write the pipeline folder ``out``; return what ``recipe.json`` holds.

    Args:
        device: ``cpu``, ``cuda`` or a torch device; it also picks the default budget
            (``recipe.gpu`` on CUDA, ``recipe.cpu`` otherwise).
        seed: initialisation, batches, noise, flips and label dropout all follow it.
        iterations, batch_size: override the budget.
        max_minutes: cut the iteration count so that training fits (see the module docstring).
        amp: bf16 autocast on CUDA, and on the CPU where the recipe says ``cpu_autocast``
            (otherwise the CPU trains in float32).
        on_ready: called with no arguments once the data and the model are built, just before
            the first step (:mod:`diff_zoo.train_all` uses it to start parallel runs together).
    """
    wall_start = time.perf_counter()
    out = Path(out)
    _check_out(out)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DiffcoreError("--device cuda was asked for but CUDA is not available; use --device cpu")
    budget = recipe.budget(device.type)
    planned = int(iterations if iterations is not None else budget.iterations)
    batch = int(batch_size if batch_size is not None else budget.batch_size)
    if planned < 1 or batch < 1:
        raise DiffcoreError(f"iterations and batch size must be positive, got {planned} and {batch}")
    source = "override" if iterations is not None else ("gpu" if device.type == "cuda" else "cpu")

    dataset = zoo_data.build(recipe.data, device=device, **recipe.data_options)
    if dataset.shape != (recipe.unet.channels, recipe.unet.sample_size, recipe.unet.sample_size):
        raise DiffcoreError(
            f"recipe {recipe.name!r}: data has shape {dataset.shape} but the UNet expects {(recipe.unet.channels, recipe.unet.sample_size, recipe.unet.sample_size)}"
        )
    codes = dataset.train.codes
    labels = dataset.train.labels
    if recipe.n_classes and (labels is None or int(labels.max()) >= recipe.n_classes):
        raise DiffcoreError(f"recipe {recipe.name!r} is conditional on {recipe.n_classes} classes but its data has no such labels")
    data_time = time.perf_counter() - wall_start

    unet = build_unet(recipe, seed).to(device).train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    params = [p for p in unet.parameters()]
    ema_params = [p for p in ema.parameters()]
    n_params = sum(p.numel() for p in params)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.adam_betas, weight_decay=recipe.weight_decay, **fused)
    from diffusers import DDIMScheduler

    alphas_cumprod = DDIMScheduler(**recipe.schedule.scheduler_config()).alphas_cumprod.to(device)
    T = recipe.schedule.num_train_timesteps
    g = torch.Generator(device=device).manual_seed(seed)
    use_amp = amp and (device.type == "cuda" or (device.type == "cpu" and recipe.cpu_autocast))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    total = planned
    budget_end = None if max_minutes is None else wall_start + max_minutes * 60 - 5.0  # a few seconds to save
    check_every = 50 if device.type == "cuda" else 25  # steps between speed measurements
    running = torch.zeros((), device=device)
    running_n = 0
    log_every = 25 if device.type == "cpu" else 100
    stopped_early = False
    loss_curve: list[tuple[int, float]] = []
    n = len(codes)
    if on_ready is not None:
        on_ready()

    with _cuda_speed_flags(device), _Progress(recipe.name, total, progress, console) as bar:
        train_start = time.perf_counter()
        mark = None  # (step, time) where the current speed measurement started
        step = 0
        while step < total:
            if budget_end is not None and step % check_every == 0 and step >= 10:
                # fit the run into the budget at the speed of the last few dozen steps (the first
                # ten, with cuDNN autotuning, are not counted); the count can go down or back up
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                now = time.perf_counter()
                if mark is not None:
                    per_step = (now - mark[1]) / (step - mark[0])
                    total = max(step + 1, min(planned, step + int((budget_end - now) / per_step)))
                mark = (step, now)
            lr = recipe.lr * lr_factor(step, total, recipe.warmup, recipe.lr_schedule)
            for group in opt.param_groups:
                group["lr"] = lr

            idx = torch.randint(n, (batch,), device=device, generator=g)
            x0 = zoo_data.to_images(codes[idx])
            if recipe.hflip:
                flip = torch.rand(batch, device=device, generator=g) < 0.5
                x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
            if recipe.vflip:
                flip = torch.rand(batch, device=device, generator=g) < 0.5
                x0 = torch.where(flip[:, None, None, None], x0.flip(-2), x0)
            y = None
            if recipe.n_classes:
                y = labels[idx]
                drop = torch.rand(batch, device=device, generator=g) < recipe.label_dropout
                y = torch.where(drop, torch.full_like(y, recipe.n_classes), y)
            t = torch.randint(T, (batch,), device=device, generator=g)
            eps = torch.randn(x0.shape, device=device, generator=g)
            ab = alphas_cumprod[t].view(-1, 1, 1, 1)
            x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps

            with autocast:
                pred = unet(x_t, t, class_labels=y, return_dict=False)[0]
            loss = F.mse_loss(pred.float(), training_target(recipe.schedule.prediction_type, x0, eps, ab.sqrt(), (1 - ab).sqrt()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
            opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, params, 1 - ema_decay(step, recipe.ema_decay))
                running += loss.detach()
                running_n += 1
            step += 1
            if step % log_every == 0 or step == total:
                loss_value = float(running) / running_n
                loss_curve.append((step, round(loss_value, 5)))
                running.zero_()
                running_n = 0
                if not math.isfinite(loss_value):
                    raise DiffcoreError(f"zoo:{recipe.name}: the loss became {loss_value} at step {step}; lower the learning rate")
                bar.update(step, total, loss_value, time.perf_counter() - train_start)
            if budget_end is not None and step < total and time.perf_counter() > budget_end + 5.0:
                stopped_early = True  # slowed down after the last measurement (another job?): keep what we have
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_time = time.perf_counter() - train_start

    final_loss, final_steps = _final_loss(loss_curve, step)
    record = {
        "name": recipe.name,
        "recipe": recipe.as_dict(),
        "seed": seed,
        "iterations": step,
        "iterations_planned": planned,
        "iterations_source": source,
        "stopped_early": stopped_early,
        "max_minutes": max_minutes,
        "batch_size": batch,
        "parameters": n_params,
        "final_loss": round(final_loss, 6),
        "final_loss_steps": final_steps,
        "loss_curve": loss_curve,
        "train_time_s": round(train_time, 2),
        "data_time_s": round(data_time, 2),
        "iterations_per_s": round(step / train_time, 3) if train_time > 0 else None,
        "device": str(device),
        "device_name": device_name(device),
        "amp": "bf16" if use_amp else None,
        "torch_version": torch.__version__,
        "diffusers_version": _version("diffusers"),
        "diff_zoo_version": _version("diff-zoo"),
        "classes": list(dataset.classes),
        "null_label": recipe.n_classes if recipe.n_classes else None,
        "data": dataset.info,
        "weights_dtype": recipe.weights_dtype,
    }

    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_pipeline(ema.to("cpu").float(), recipe, tmp)
        record["weights_bytes"] = (tmp / WEIGHTS).stat().st_size
        record["wall_time_s"] = round(time.perf_counter() - wall_start, 2)
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        from diff_zoo.card import render_card

        (tmp / "README.md").write_text(render_card(recipe, record))
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def _final_loss(loss_curve: list[tuple[int, float]], steps: int, window: int = 200) -> tuple[float, int]:
    """The mean training loss over (about) the last ``window`` steps, from the logged window means.

    >>> _final_loss([(25, 1.0), (50, 0.5), (60, 0.2)], 60, window=30)
    (0.414286, 35)
    """
    total, count, end = 0.0, 0, steps
    for at, value in reversed(loss_curve):
        begin = max((p for p, _ in loss_curve if p < at), default=0)
        total += value * (at - begin)
        count += at - begin
        end = begin
        if steps - end >= window:
            break
    return (round(total / count, 6) if count else float("nan")), count


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None
