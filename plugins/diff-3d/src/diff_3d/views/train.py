"""Training ``zoo:views`` (:mod:`diff_3d.views.recipe`) on diffcore's training loop.

Each step draws ``recipe.batch`` fresh pairs from the seeded generator
(:func:`diff_3d.views.data.pairs`), drops the reference and the pose together for a share
``cond_dropout`` of them (a reference of zeros is *no reference*, :mod:`diff_3d.views.prior`), and
returns :func:`diffcore.training.denoising_loss` on the target views; :func:`diffcore.training.fit`
does the rest. The EMA weights are saved (float16) with ``recipe.json`` (the recipe, seed, steps
done, wall and CPU time, the loss curve, versions).

``python -m diff_3d.views.train OUT [--steps N] [--minutes M] [--seed S]``
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

from diff_3d.views.data import pairs
from diff_3d.views.network import ViewUNet
from diff_3d.views.prior import ViewPrior, save_view_prior
from diff_3d.views.recipe import RECIPE, ViewRecipe
from diffcore.protocols import Cond

RECORD = "recipe.json"


def _curve(losses: list[float], every: int = 50) -> list[tuple[int, float]]:
    return [
        (min(i + every, len(losses)), round(sum(losses[i : i + every]) / len(losses[i : i + every]), 5))
        for i in range(0, len(losses), every)
    ]


def train(
    out,
    recipe: ViewRecipe = RECIPE,
    *,
    seed: int = 0,
    steps: int | None = None,
    max_minutes: float | None = None,
    progress: bool | str = "log",
) -> ViewPrior:
    """Train ``recipe`` from ``seed`` and write the prior folder to ``out``; returns the (EMA) prior."""
    from diffcore.training import EMA, denoising_loss, fit

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = ViewUNet(recipe.network)
    network.train()
    prior = ViewPrior(network, clip_x0=True, name=f"zoo:{recipe.name}", prediction_type=recipe.prediction_type)
    ema = EMA(network, recipe.ema_decay)

    def loss_fn(step: int, g: torch.Generator) -> torch.Tensor:
        batch = pairs(recipe.batch, g, most=recipe.most)
        keep = (torch.rand(recipe.batch, generator=g) >= recipe.cond_dropout).float()
        cond = Cond(image=batch.reference * keep[:, None, None, None], camera=batch.relative * keep[:, None, None])
        return denoising_loss(prior, batch.target, cond=cond, generator=g)

    wall, cpu = time.time(), time.process_time()
    record = fit(
        loss_fn,
        list(network.named_parameters()),
        steps=int(steps or recipe.iterations),
        generator=torch.Generator().manual_seed(seed),
        lr=recipe.lr,
        betas=(0.9, 0.99),
        lr_schedule="cosine",
        warmup=recipe.warmup,
        ema=ema,
        grad_clip=recipe.grad_clip or None,
        max_minutes=recipe.max_minutes if max_minutes is None else max_minutes,
        progress=progress,
        name=f"zoo:{recipe.name}",
        multi_process=False,
    )
    trained = ViewPrior(
        ema.module.eval().requires_grad_(False), clip_x0=True, name=f"zoo:{recipe.name}", prediction_type=recipe.prediction_type
    )
    save_view_prior(trained, out)
    info = {
        "recipe": recipe.as_dict(),
        "seed": seed,
        "steps_asked": int(steps or recipe.iterations),
        "steps_done": record.steps,
        "stopped_early": record.stopped_early,
        "wall_minutes": round((time.time() - wall) / 60, 2),
        "cpu_minutes": round((time.process_time() - cpu) / 60, 2),
        "loss_curve": _curve(record.losses),
        "device": record.device_name,
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    (Path(out) / RECORD).write_text(json.dumps(info, indent=2) + "\n")
    return trained


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m diff_3d.views.train", description="Train zoo:views")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train(args.out, seed=args.seed, steps=args.steps, max_minutes=args.minutes)


if __name__ == "__main__":
    main(sys.argv[1:])
