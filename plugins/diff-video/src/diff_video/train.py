"""Training ``zoo:moving-digits``: the recipe's two stages on diffcore's training loop.

Stage ``image`` fine-tunes the base image UNet on single frames; stage ``temporal`` inflates the
result and trains its temporal layers only (:mod:`diff_video.recipe`). Each step draws fresh
clips from the seeded generator (:func:`diff_video.data.moving_digits` on the training digits),
replaces a share ``label_dropout`` of the labels by the null class, and returns
:func:`diffcore.training.denoising_loss`; :func:`diffcore.training.fit` does the rest (AdamW,
warm-up and cosine, clipping, EMA, the time budget). The EMA weights are what is saved.

The output folder is the layout :mod:`diff_video.zoo` loads, plus ``recipe.json`` (the recipe,
seed, steps and times of each stage, loss curves, device, versions). On the CPU the same recipe,
seed and step counts give the same weights (every draw comes from one generator per stage).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

from diff_video.data import digit_source, moving_digits
from diff_video.recipe import RECIPE, VideoRecipe
from diff_video.zoo import INFLATION, TEMPORAL
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond

RECORD = "recipe.json"


def base_unet(recipe: VideoRecipe):
    """The base image UNet (``recipe.base``'s network) at the recipe's frame size, as a fresh float32 copy."""
    from diffusers import UNet2DModel

    import diffcore

    base = diffcore.create("prior", recipe.base)
    network = base.network
    config = dict(network.config)
    config["sample_size"] = recipe.size
    unet = UNet2DModel.from_config(config)
    unet.load_state_dict({k: v.float() for k, v in network.state_dict().items()})
    return unet.float(), dict(base.scheduler_config)


def _labels(recipe: VideoRecipe, labels: torch.Tensor, g: torch.Generator) -> Cond:
    drop = torch.rand(labels.shape[0], generator=g) < recipe.label_dropout
    return Cond(labels=torch.where(drop, torch.full_like(labels, recipe.n_classes), labels))


def _curve(losses: list[float], every: int = 25) -> list[tuple[int, float]]:
    return [
        (min(i + every, len(losses)), round(sum(losses[i : i + every]) / len(losses[i : i + every]), 5))
        for i in range(0, len(losses), every)
    ]


def _fit(loss_fn, params, stage, *, generator, ema, name, progress, grad_clip, steps=None, max_minutes=None):
    from diffcore.training import fit

    return fit(
        loss_fn,
        params,
        steps=int(steps or stage.iterations),
        generator=generator,
        lr=stage.lr,
        betas=(0.9, 0.99),
        lr_schedule="cosine",
        warmup=stage.warmup,
        ema=ema,
        grad_clip=grad_clip or None,
        max_minutes=max_minutes,
        progress=True if progress else "log",
        name=name,
        multi_process=False,
    )


def train_image(recipe: VideoRecipe, *, seed: int = 0, steps: int | None = None, progress: bool = True):
    """Stage 1: the base UNet fine-tuned on single frames. Returns the EMA network, the scheduler config, the fit record and the
    CPU seconds."""
    from diffcore.adapters.diffusers_prior import DiffusersUNetPrior
    from diffcore.training import EMA, denoising_loss

    source = digit_source("train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet, scheduler_config = base_unet(recipe)
    unet.train()
    prior = DiffusersUNetPrior(unet, scheduler_config)
    stage = recipe.image
    ema = EMA(unet, stage.ema_decay)
    g = torch.Generator().manual_seed(seed)

    def loss_fn(step: int, g: torch.Generator) -> torch.Tensor:
        clips = moving_digits(source, stage.batch_frames, 1, generator=g, size=recipe.size, speed=recipe.speed)
        x0 = clips.videos()[:, 0]
        return denoising_loss(prior, x0, cond=_labels(recipe, clips.labels, g), generator=g)

    cpu = time.process_time()
    record = _fit(
        loss_fn,
        list(unet.named_parameters()),
        stage,
        generator=g,
        ema=ema,
        name=f"zoo:{recipe.name} image",
        progress=progress,
        grad_clip=recipe.grad_clip,
        steps=steps,
    )
    return ema.module, scheduler_config, record, time.process_time() - cpu


def train_temporal(recipe: VideoRecipe, image_unet, scheduler_config, *, seed: int = 0, steps: int | None = None, progress: bool = True):
    """Stage 2: ``image_unet`` inflated, its temporal layers trained on clips. Returns the prior (EMA weights), the fit record and
    the CPU seconds."""
    from diff_video.inflate import inflate
    from diff_video.prior import SpaceTimePrior
    from diffcore.training import EMA, denoising_loss, train_only

    source = digit_source("train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        network = inflate(image_unet, **recipe.inflation.as_dict())
    params = train_only(network, "temporal")
    prior = SpaceTimePrior(network, scheduler_config, num_frames=recipe.default_frames)
    stage = recipe.temporal
    ema = EMA(params, stage.ema_decay)
    g = torch.Generator().manual_seed(seed + 1)

    def loss_fn(step: int, g: torch.Generator) -> torch.Tensor:
        frames = recipe.frames[step % len(recipe.frames)]
        n = max(1, stage.batch_frames // frames)
        clips = moving_digits(source, n, frames, generator=g, size=recipe.size, speed=recipe.speed)
        return denoising_loss(prior, clips.videos(), cond=_labels(recipe, clips.labels, g), generator=g)

    cpu = time.process_time()
    record = _fit(
        loss_fn,
        params,
        stage,
        generator=g,
        ema=ema,
        name=f"zoo:{recipe.name} temporal",
        progress=progress,
        grad_clip=recipe.grad_clip,
        steps=steps,
    )
    cpu = time.process_time() - cpu
    with torch.no_grad():
        for (_, p), average in zip(params, ema.tensors.values()):
            p.copy_(average)
    network.eval().requires_grad_(False)
    return prior, record, cpu


def save(prior, folder: Path, recipe: VideoRecipe) -> None:
    """Write ``prior`` (a trained :class:`~diff_video.prior.SpaceTimePrior`) in the layout of :mod:`diff_video.zoo`."""
    from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel
    from safetensors.torch import save_file

    network = prior.network
    dtype = getattr(torch, recipe.weights_dtype)
    spatial = {k: v.detach().cpu().to(dtype).contiguous() for k, v in network.state_dict().items() if "temporal" not in k}
    temporal = {k: v.detach().cpu().to(dtype).contiguous() for k, v in network.named_parameters() if "temporal" in k}
    image = UNet2DModel.from_config(network.config)
    image.load_state_dict({k: v.float() for k, v in spatial.items()})
    DDIMPipeline(unet=image, scheduler=DDIMScheduler.from_config(prior.scheduler_config)).save_pretrained(folder, safe_serialization=True)
    save_file(spatial, str(folder / "unet" / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    (folder / "temporal").mkdir(parents=True, exist_ok=True)
    save_file(temporal, str(folder / TEMPORAL), metadata={"format": "pt"})
    (folder / INFLATION).write_text(json.dumps(network.inflation.as_dict(), indent=2) + "\n")
    for file in folder.rglob("*"):
        if file.is_file():
            file.chmod(0o644)


def _stage_record(record, cpu_time_s: float) -> dict:
    return {
        "steps": record.steps,
        "steps_planned": record.steps_planned,
        "stopped_early": record.stopped_early,
        "train_time_s": round(record.train_time_s, 2),
        "cpu_time_s": round(cpu_time_s, 1),
        "iterations_per_s": None if record.iterations_per_s is None else round(record.iterations_per_s, 3),
        "final_loss": round(sum(record.losses[-100:]) / len(record.losses[-100:]), 5),
        "loss_curve": _curve(record.losses),
    }


def train(
    out,
    *,
    recipe: VideoRecipe = RECIPE,
    seed: int = 0,
    image_steps: int | None = None,
    temporal_steps: int | None = None,
    progress: bool = True,
) -> dict:
    """Train ``recipe`` and write its folder ``out`` (replacing an earlier training output only); return ``recipe.json``'s content.

    ``image_steps`` / ``temporal_steps`` replace a stage's step count (default: the recipe's).
    """
    from diffcore.training import device_name

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / RECORD).is_file())):
        raise DiffcoreError(f"{out} exists and is not an empty folder or an earlier training output; choose another --out")
    start = time.perf_counter()
    image_unet, scheduler_config, image_record, image_cpu = train_image(recipe, seed=seed, steps=image_steps, progress=progress)
    prior, temporal_record, temporal_cpu = train_temporal(
        recipe, image_unet, scheduler_config, seed=seed, steps=temporal_steps, progress=progress
    )
    record = {
        "name": recipe.name,
        "recipe": recipe.as_dict(),
        "seed": seed,
        "stages": {"image": _stage_record(image_record, image_cpu), "temporal": _stage_record(temporal_record, temporal_cpu)},
        "parameters": {
            "spatial": sum(p.numel() for n, p in prior.network.named_parameters() if "temporal" not in n),
            "temporal": sum(p.numel() for n, p in prior.network.named_parameters() if "temporal" in n),
        },
        "classes": [str(d) for d in range(recipe.n_classes)],
        "null_label": recipe.n_classes,
        "default_frames": recipe.default_frames,
        "device": "cpu",
        "device_name": device_name(torch.device("cpu")),
        "torch_version": torch.__version__,
        "wall_time_s": None,
    }
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save(prior, tmp, recipe)
        record["wall_time_s"] = round(time.perf_counter() - start, 1)
        record["weights_bytes"] = sum(f.stat().st_size for f in tmp.rglob("*.safetensors"))
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Train zoo:moving-digits (both stages) into a folder.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-steps", type=int, default=None)
    parser.add_argument("--temporal-steps", type=int, default=None)
    args = parser.parse_args(argv)
    record = train(args.out, seed=args.seed, image_steps=args.image_steps, temporal_steps=args.temporal_steps, progress=False)
    print(json.dumps({k: record[k] for k in ("stages", "wall_time_s", "weights_bytes")}, indent=2))


if __name__ == "__main__":
    main()
