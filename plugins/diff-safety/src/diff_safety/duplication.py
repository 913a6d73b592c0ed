"""The duplication experiment: duplicated training images are extracted far more often.

Carlini et al. (2023, sec. 7 and fig. 9) find that the images they extract from diffusion models
are mostly ones duplicated in the training data, and Somepalli et al. (2023b) that duplication
drives replication. This recipe reproduces the effect at a scale a CPU trains in minutes:

1. the training set is zoo digits' training split (scikit-learn digits at 16x16, 1437 images;
   ``diff_zoo.data.digits``) in which some images are repeated: by default 20 images appear 10
   times and 5 images 100 times (their copies are added; every other image appears once);
2. a small unconditional ``UNet2DModel`` (DDPM, epsilon prediction, linear betas over 1000
   steps) is trained on it with the kernel's training loop (:func:`diffcore.training.fit`,
   :func:`diffcore.training.denoising_loss`, an EMA of the weights);
3. ``generations`` images are drawn from the EMA model (DDIM, 50 steps) and each is tested
   against the (deduplicated) training set with Carlini et al.'s extraction test
   (:func:`~diff_safety.extraction.find_extractions`: tiled L2, eq. 1 with n = 50, alpha = 0.5,
   delta = 1/3);
4. per duplication level, the **extraction rate** is the share of that level's training images
   that at least one generation extracts; the share of generations that are extractions of the
   level's images is reported too.

``run_duplication(DuplicationRecipe())`` is the full run (about 25 minutes on a 2-core CPU;
docs/safety.md has its numbers and plot); :data:`TINY` is the seconds-long version the tests run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from diff_safety.extraction import Criterion, find_extractions
from diffcore.errors import DiffcoreError


@dataclass(frozen=True)
class DuplicationRecipe:
    """Settings of the duplication experiment (see the module docstring).

    ``duplicated``: ``(copies, images)`` pairs, e.g. ``(100, 5)``: 5 images appear 100 times;
    every other image of the (first ``base``) training digits appears once. ``channels`` and
    ``layers_per_block`` describe the UNet (no attention); ``steps`` x ``batch`` the training,
    cut to ``max_minutes`` of training by the loop's time budget.
    """

    duplicated: tuple[tuple[int, int], ...] = ((10, 20), (100, 5))
    base: int | None = None
    size: int = 16
    channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    steps: int = 6000
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 100
    ema_decay: float = 0.999
    max_minutes: float | None = 22.0
    generations: int = 1000
    sample_steps: int = 50
    criterion: Criterion = field(default_factory=Criterion)
    seed: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


#: A version that runs in seconds: 8x8 digits, 40 base images, 2 of them 40 times, a tiny UNet.
TINY = DuplicationRecipe(
    duplicated=((40, 2),),
    base=40,
    size=8,
    channels=(16, 32),
    layers_per_block=1,
    steps=300,
    batch=32,
    lr=2e-3,
    warmup=20,
    ema_decay=0.99,
    max_minutes=None,
    generations=64,
    sample_steps=20,
    criterion=Criterion(grid=2, n=20),
)


def _digits(recipe: DuplicationRecipe) -> torch.Tensor:
    try:
        from diff_zoo import data as zoo_data
    except ImportError as exc:
        raise ImportError('the duplication experiment trains on zoo digits: pip install "diff-safety[zoo]"') from exc
    images = zoo_data.digits(size=recipe.size).train.images()
    return images[: recipe.base] if recipe.base is not None else images


def duplicated_training_set(n_images: int, recipe: DuplicationRecipe) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The index list of the training set (base images once, chosen ones repeated) and the images of each level.

    Returns ``(order, levels)``: ``order`` indexes the base images (a chosen image appears
    ``copies`` times), ``levels[copies]`` the base indices duplicated that often (``levels[1]``:
    all others). The choice is a seeded permutation, so it depends only on the recipe.
    """
    wanted = sum(count for _, count in recipe.duplicated)
    if wanted >= n_images:
        raise DiffcoreError(f"the recipe duplicates {wanted} images but the base set has only {n_images}")
    if any(copies < 2 or count < 1 for copies, count in recipe.duplicated):
        raise DiffcoreError("each duplication level needs copies >= 2 and images >= 1")
    perm = torch.randperm(n_images, generator=torch.Generator().manual_seed(recipe.seed + 1))
    levels, start, order = {}, 0, [torch.arange(n_images)]
    for copies, count in recipe.duplicated:
        chosen = torch.sort(perm[start : start + count]).values
        levels[copies] = chosen
        order.append(chosen.repeat(copies - 1))
        start += count
    levels[1] = torch.sort(perm[start:]).values
    return torch.cat(order), dict(sorted(levels.items()))


def build_model(recipe: DuplicationRecipe):
    """The recipe's unconditional ``UNet2DModel`` as a trainable diffcore prior (initialised under the seed)."""
    from diffusers import UNet2DModel

    from diff_zoo.recipes import NoiseSchedule, UNetConfig
    from diffcore.adapters.diffusers_prior import DiffusersUNetPrior

    config = UNetConfig(
        sample_size=recipe.size, channels=1, block_out_channels=tuple(recipe.channels), layers_per_block=recipe.layers_per_block
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        unet = UNet2DModel(**config.diffusers_config(0))
    return DiffusersUNetPrior(unet, NoiseSchedule().scheduler_config())


def run_duplication(recipe: DuplicationRecipe = DuplicationRecipe(), *, progress: bool | str = False) -> dict:
    """Train, generate and measure (see the module docstring); returns the numbers as a JSON-able dict."""
    import diffcore
    from diffcore.adapters.diffusers_prior import DiffusersUNetPrior
    from diffcore.training import EMA, denoising_loss, device_name, fit

    wall = time.perf_counter()
    base = _digits(recipe)
    order, levels = duplicated_training_set(base.shape[0], recipe)
    prior = build_model(recipe)
    prior.network.train()
    params = [(n, p) for n, p in prior.network.named_parameters()]
    ema = EMA(prior.network, decay=recipe.ema_decay)

    def loss_fn(step, generator):
        pick = order[torch.randint(order.numel(), (recipe.batch,), generator=generator)]
        return denoising_loss(prior, base[pick], generator=generator)

    record = fit(
        loss_fn,
        params,
        steps=recipe.steps,
        generator=torch.Generator().manual_seed(recipe.seed),
        lr=recipe.lr,
        betas=(0.9, 0.99),
        lr_schedule="cosine",
        warmup=recipe.warmup,
        ema=ema,
        grad_clip=1.0,
        max_minutes=recipe.max_minutes,
        progress=progress,
        name="duplication",
        multi_process=False,
    )
    model = DiffusersUNetPrior(ema.module, prior.scheduler_config)
    sample_start = time.perf_counter()
    generator = torch.Generator().manual_seed(recipe.seed + 2)
    chunks = [
        diffcore.sample(model, min(250, recipe.generations - s), steps=recipe.sample_steps, generator=generator)
        for s in range(0, recipe.generations, 250)
    ]
    generated = torch.cat(chunks).float()
    sample_time = time.perf_counter() - sample_start
    found = find_extractions(generated, base, recipe.criterion, features="pixels")
    extracted = set(found.extracted_training_images().tolist())
    nearest = found.nearest.tolist()
    rows = []
    for copies, members in levels.items():
        member_set = set(members.tolist())
        hit = sorted(member_set & extracted)
        gens = sum(1 for i, flag in enumerate(found.extracted.tolist()) if flag and nearest[i] in member_set)
        rows.append(
            {
                "copies": copies,
                "images": len(member_set),
                "extracted_images": len(hit),
                "extraction_rate": round(len(hit) / len(member_set), 4),
                "share_of_training_set": round(copies * len(member_set) / order.numel(), 4),
                "extracting_generations": gens,
                "generations_rate": round(gens / recipe.generations, 4),
            }
        )
    return {
        "recipe": recipe.as_dict(),
        "training_images": int(order.numel()),
        "base_images": int(base.shape[0]),
        "levels": rows,
        "generations": recipe.generations,
        "extracted_generations": int(found.extracted.sum()),
        "replica_generations": int(found.replica.sum()),
        "score_quantiles": {str(q): round(float(torch.quantile(found.score, q)), 4) for q in (0.01, 0.05, 0.5)},
        "training": {
            "steps": record.steps,
            "steps_planned": record.steps_planned,
            "final_loss": round(sum(record.losses[-100:]) / len(record.losses[-100:]), 5),
            "train_time_s": round(record.train_time_s, 1),
            "device": device_name(torch.device("cpu")),
        },
        "sample_time_s": round(sample_time, 1),
        "wall_time_s": round(time.perf_counter() - wall, 1),
        "torch_version": torch.__version__,
    }


def plot_duplication(result: dict, path) -> Path:
    """Extraction rate against copies in the training set (log x), with the counts on the points; a PNG at ``path``."""
    from diffcore.tour import require_matplotlib, write_atomic

    require_matplotlib()
    import io

    from matplotlib.figure import Figure

    rows = result["levels"]
    fig = Figure(figsize=(5.2, 3.4), layout="constrained")
    ax = fig.subplots()
    xs = [r["copies"] for r in rows]
    ys = [100 * r["extraction_rate"] for r in rows]
    ax.plot(xs, ys, "o-", color="#b03030")
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(
            f"{r['extracted_images']}/{r['images']}", (x, y), textcoords="offset points", xytext=(6, -12 if y > 50 else 6), fontsize=8
        )
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x}x" for x in xs])
    ax.set_ylim(-5, 105)
    ax.set_xlabel("copies of an image in the training set")
    ax.set_ylabel("images extracted (%)")
    training = result["training"]
    ax.set_title(f"{result['generations']} generations, {training['steps']} training steps", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, facecolor="white")
    return write_atomic(path, buf.getvalue())


def write_result(result: dict, path) -> Path:
    from diffcore.tour import write_atomic

    return write_atomic(path, json.dumps(result, indent=2) + "\n")


def rates(result: dict) -> dict[int, float]:
    """``{copies: extraction rate}`` of a result."""
    return {r["copies"]: r["extraction_rate"] for r in result["levels"]}


def main(argv=None) -> None:
    """``python -m diff_safety.duplication --out DIR [--tiny]``: run the experiment, write duplication.json and .png."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--max-minutes", type=float, default=None)
    args = parser.parse_args(argv)
    recipe = TINY if args.tiny else DuplicationRecipe()
    if args.max_minutes is not None:
        recipe = dataclasses.replace(recipe, max_minutes=args.max_minutes)
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_duplication(recipe, progress="log")
    write_result(result, args.out / "duplication.json")
    plot_duplication(result, args.out / "duplication.png")
    print(json.dumps(result["levels"], indent=1))


if __name__ == "__main__":
    main()
