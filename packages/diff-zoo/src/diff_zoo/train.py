"""Training a zoo prior: the recipe's data and network on diffcore's training loop.

Each step draws a batch of training images ``x0`` (randomly flipped where the recipe allows) and,
for class-conditional recipes, their labels, replacing a share ``label_dropout`` of them by the
null class ``n_classes`` (classifier-free guidance, Ho & Salimans 2022); then
:func:`diffcore.training.denoising_loss` draws steps ``i`` uniform in ``{0, ..., T-1}`` and noise
``eps ~ N(0, I)``, forms ``x_t = sqrt(abar_i) x0 + sqrt(1 - abar_i) eps`` with diffusers' own
``alphas_cumprod`` and returns the squared error of the network's output against the target of
the recipe's parameterisation (eps, as in Ho et al. 2020, Algorithm 1; or v). The optimisation
is :func:`diffcore.training.fit`: AdamW, a learning rate that warms up linearly, then follows a
cosine to zero (or stays constant), gradient clipping, and an exponential moving average of the
weights, with the usual warm-up ``min(decay, (1 + n) / (10 + n))``, which is what gets saved.
The loop moved into the kernel without changing a single draw: the same seed gives the same
per-step losses as the zoo's own loop did (``tests/test_train_kernel_loop.py``).

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

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diff_zoo import data as zoo_data
from diff_zoo.recipes import Recipe
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond
from diffcore.training import EMA, denoising_loss, device_name, fit

__all__ = ["RECORD", "WEIGHTS", "build_unet", "device_name", "save_pipeline", "train"]

RECORD = "recipe.json"
WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"


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
    on_step=None,
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
        on_step: called as ``on_step(step, loss, logs)`` for every step (1-based), a log point
            at a time (:func:`diffcore.training.fit`'s ``callback``).
        progress: a progress bar on a terminal (log lines otherwise); ``False``: log lines only.
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
            f"recipe {recipe.name!r}: data has shape {dataset.shape} but the UNet expects "
            f"{(recipe.unet.channels, recipe.unet.sample_size, recipe.unet.sample_size)}"
        )
    codes = dataset.train.codes
    labels = dataset.train.labels
    if recipe.n_classes and (labels is None or int(labels.max()) >= recipe.n_classes):
        raise DiffcoreError(f"recipe {recipe.name!r} is conditional on {recipe.n_classes} classes but its data has no such labels")
    data_time = time.perf_counter() - wall_start

    unet = build_unet(recipe, seed).to(device).train()
    from diffcore.adapters.diffusers_prior import DiffusersUNetPrior

    prior = DiffusersUNetPrior(unet, recipe.schedule.scheduler_config())  # not owned: trains in place, in train mode
    ema = EMA(unet, recipe.ema_decay)
    params = list(unet.named_parameters())
    n_params = sum(p.numel() for _, p in params)
    g = torch.Generator(device=device).manual_seed(seed)
    use_amp = amp and (device.type == "cuda" or (device.type == "cpu" and recipe.cpu_autocast))
    n = len(codes)

    def loss_fn(step: int, g: torch.Generator) -> torch.Tensor:
        idx = torch.randint(n, (batch,), device=device, generator=g)
        x0 = zoo_data.to_images(codes[idx])
        if recipe.hflip:
            flip = torch.rand(batch, device=device, generator=g) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        if recipe.vflip:
            flip = torch.rand(batch, device=device, generator=g) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-2), x0)
        cond = None
        if recipe.n_classes:
            y = labels[idx]
            drop = torch.rand(batch, device=device, generator=g) < recipe.label_dropout
            cond = Cond(labels=torch.where(drop, torch.full_like(y, recipe.n_classes), y))
        return denoising_loss(prior, x0, cond=cond, generator=g)

    log_every = 25 if device.type == "cpu" else 100
    if on_ready is not None:
        on_ready()
    result = fit(
        loss_fn,
        params,
        steps=planned,
        generator=g,
        lr=recipe.lr,
        betas=recipe.adam_betas,
        weight_decay=recipe.weight_decay,
        lr_schedule=recipe.lr_schedule,
        warmup=recipe.warmup,
        ema=ema,
        amp="bf16" if use_amp else None,
        grad_clip=recipe.grad_clip or None,
        max_minutes=None if max_minutes is None else max_minutes - (time.perf_counter() - wall_start) / 60,
        progress=True if progress else "log",
        name=f"zoo:{recipe.name}",
        console=console,
        log_every=log_every,
        callback=on_step,
        cuda_fast=True,
        multi_process=False,
    )
    step, train_time, stopped_early = result.steps, result.train_time_s, result.stopped_early
    loss_curve = _window_means(result.losses, log_every)

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
        "amp": result.amp,
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
        save_pipeline(ema.module.to("cpu").float(), recipe, tmp)
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


def _window_means(losses: list[float], every: int) -> list[tuple[int, float]]:
    """``(step, mean loss)`` every ``every`` steps and at the last step, the mean over the steps since the previous point.

    The sum runs in float32 in step order, as the zoo's loop summed its running loss.

    >>> _window_means([1.0, 0.5, 0.25, 0.125, 0.5], 2)
    [(2, 0.75), (4, 0.1875), (5, 0.5)]
    """
    curve, start = [], 0
    for end in range(1, len(losses) + 1):
        if end % every == 0 or end == len(losses):
            total = np.float32(0.0)
            for value in losses[start:end]:
                total = np.float32(total + np.float32(value))
            curve.append((end, round(float(total) / (end - start), 5)))
            start = end
    return curve


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
