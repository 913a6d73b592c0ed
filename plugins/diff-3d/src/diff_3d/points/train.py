"""Training ``zoo:shapes`` (:mod:`diff_3d.points.recipe`) on diffcore's training loop.

Each step draws ``batch`` fresh shapes from the seeded generator, drops a share ``label_dropout`` of
their labels to the null class and returns :func:`diffcore.training.denoising_loss`;
:func:`diffcore.training.fit` does the rest (AdamW, warm-up and cosine, clipping, the EMA, the log).
The EMA weights are saved (:func:`diff_3d.points.zoo.save_prior`) with ``recipe.json`` (recipe, seed,
steps, times, loss curve, machine). On the CPU the same recipe, seed and step count give the same
weights. ``python -m diff_3d.points.train --out DIR`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from diff_3d.points.recipe import RECIPE, ShapesRecipe
from diff_3d.points.shapes import shapes
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond

RECORD = "recipe.json"


def build(recipe: ShapesRecipe, seed: int = 0):
    """A fresh prior of the recipe's network, initialised under ``seed``."""
    from diff_3d.points.network import PointVoxelNet
    from diff_3d.points.prior import PointCloudPrior

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = PointVoxelNet(**recipe.network_config())
    return PointCloudPrior(network, points=recipe.points, class_names=recipe.classes, name=f"zoo:{recipe.name}")


def batch_loss(prior, recipe: ShapesRecipe, g: torch.Generator) -> torch.Tensor:
    """One step's loss: fresh shapes, labels with dropout, the denoising loss (every draw from ``g``)."""
    from diffcore.training import denoising_loss

    x0, labels = shapes(recipe.batch, recipe.points, g, kinds=recipe.classes)
    drop = torch.rand(recipe.batch, generator=g) < recipe.label_dropout
    labels = torch.where(drop, torch.full_like(labels, len(recipe.classes)), labels)
    return denoising_loss(prior, x0, cond=Cond(labels=labels), generator=g)


def _curve(losses: list[float], every: int = 50) -> list[tuple[int, float]]:
    return [
        (min(i + every, len(losses)), round(sum(losses[i : i + every]) / len(losses[i : i + every]), 5))
        for i in range(0, len(losses), every)
    ]


def fit_prior(recipe: ShapesRecipe = RECIPE, *, seed: int = 0, steps: int | None = None, progress: bool | str = True, max_minutes=None):
    """Train the recipe's prior; return it (EMA weights, eval mode), the fit record and the CPU seconds."""
    from diffcore.training import EMA, fit

    prior = build(recipe, seed)
    network = prior.network.train()
    ema = EMA(network, recipe.ema_decay)
    cpu = time.process_time()
    record = fit(
        lambda step, g: batch_loss(prior, recipe, g),
        list(network.named_parameters()),
        steps=int(steps or recipe.iterations),
        generator=torch.Generator().manual_seed(seed),
        lr=recipe.lr,
        lr_schedule="cosine",
        warmup=recipe.warmup,
        ema=ema,
        grad_clip=recipe.grad_clip or None,
        max_minutes=max_minutes,
        progress=progress,
        name=f"zoo:{recipe.name}",
        multi_process=False,
    )
    cpu = time.process_time() - cpu
    prior.network = ema.module.eval().requires_grad_(False)
    return prior, record, cpu


def train(
    out, *, recipe: ShapesRecipe = RECIPE, seed: int = 0, steps: int | None = None, progress: bool | str = True, max_minutes=None
) -> dict:
    """Train ``recipe`` and write its folder ``out`` (replacing an earlier training output only); return ``recipe.json``'s content."""
    from diff_3d.points.zoo import save_prior
    from diffcore.training import device_name

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / RECORD).is_file())):
        raise DiffcoreError(f"{out} exists and is not an empty folder or an earlier training output; choose another --out")
    start = time.perf_counter()
    prior, record, cpu = fit_prior(recipe, seed=seed, steps=steps, progress=progress, max_minutes=max_minutes)
    summary = {
        "name": recipe.name,
        "recipe": recipe.as_dict(),
        "seed": seed,
        "steps": record.steps,
        "max_minutes": max_minutes,
        "train_time_s": round(record.train_time_s, 1),
        "cpu_time_s": round(cpu, 1),
        "iterations_per_s": None if record.iterations_per_s is None else round(record.iterations_per_s, 3),
        "final_loss": round(sum(record.losses[-100:]) / len(record.losses[-100:]), 5),
        "loss_curve": _curve(record.losses),
        "parameters": sum(p.numel() for p in prior.network.parameters()),
        "device_name": device_name(torch.device("cpu")),
        "torch_version": torch.__version__,
    }
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_prior(prior, tmp, dtype=getattr(torch, recipe.weights_dtype))
        summary["wall_time_s"] = round(time.perf_counter() - start, 1)
        summary["weights_bytes"] = (tmp / "network.safetensors").stat().st_size
        (tmp / RECORD).write_text(json.dumps(summary, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train zoo:shapes (a point-voxel diffusion model of procedural shapes) on this CPU.")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="replace the recipe's step count")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="fit the run into this many minutes (fewer steps on a slow machine)"
    )
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="FIELD=VALUE", help="replace recipe fields (ints and floats), e.g. resolution=0"
    )
    args = parser.parse_args(argv)
    recipe = RECIPE
    for item in args.set:
        key, _, value = item.partition("=")
        current = getattr(recipe, key)
        recipe = ShapesRecipe(**{**recipe.as_dict(), key: type(current)(value)})
    summary = train(args.out, recipe=recipe, seed=args.seed, steps=args.steps, progress="log", max_minutes=args.max_minutes)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("loss_curve", "recipe")}))


if __name__ == "__main__":
    main()
