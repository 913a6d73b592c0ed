"""The measurements of ``zoo:shapes``: generation against held-out shapes (MMD, COV, 1-NNA under CD and EMD) and completion.

Generation (the protocol of PointFlow, PVD and LION, :mod:`diff_3d.points.metrics`): ``per_class``
clouds of every class generated with its label, against as many held-out shapes per class drawn
from a seed the training never used. The same numbers for a second held-out set in place of the
generated clouds are the floor a perfect model would reach at this sample size (1-NNA near 50%,
not exactly). ``class match``: the share of generated clouds whose nearest held-out shape (CD) has
the class that was asked for.

Completion (:mod:`diff_3d.points.completion`): each held-out shape is cut by a random plane through
its centre; the half on one side (about P/2 points) is completed to P points with the class label,
and compared with the whole shape by CD and EMD. The baseline is the half alone, resampled with
replacement to P points (what completion has to improve on).

``python -m diff_3d.points.evaluate [--path DIR]`` writes ``metrics.json`` into the weights folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diff_3d.points import metrics
from diff_3d.points.completion import complete
from diff_3d.points.shapes import SHAPES, shape
from diffcore.protocols import Cond

HELD_OUT_SEED = 10_000  # training draws from seed 0's generator; these shapes come from elsewhere


def held_out(per_class: int, points: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` shapes of every class, class by class: clouds (5 per_class, P, 3) and labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(SHAPES)).repeat_interleave(per_class)
    return torch.stack([shape(int(k), points, g) for k in labels]), labels


def generate(prior, labels: torch.Tensor, *, steps: int, sampler: str, seed: int) -> tuple[torch.Tensor, float]:
    """Clouds for ``labels`` and the seconds per cloud."""
    import diffcore

    start = time.perf_counter()
    x = diffcore.sample(
        prior, len(labels), steps=steps, sampler=sampler, cond=Cond(labels=labels), generator=torch.Generator().manual_seed(seed)
    )
    return x.cpu(), (time.perf_counter() - start) / len(labels)


def _rounded(d: dict) -> dict:
    return {k: round(float(v), 5) for k, v in d.items()}


def generation(prior, *, per_class: int, steps: int, sampler: str, seed: int = 0) -> dict:
    points = prior.sample_shape[0]
    reference, labels = held_out(per_class, points, HELD_OUT_SEED)
    floor_set, _ = held_out(per_class, points, HELD_OUT_SEED + 1)
    generated, seconds = generate(prior, labels, steps=steps, sampler=sampler, seed=seed)
    d_gr = metrics.pairwise(generated, reference, distance="cd")
    match = float((labels[torch.as_tensor(d_gr.argmin(axis=1))] == labels).double().mean())
    return {
        "generated": {**_rounded(metrics.set_metrics(generated, reference)), "class match": round(match, 4)},
        "held-out (floor)": _rounded(metrics.set_metrics(floor_set, reference)),
        "seconds_per_cloud": round(seconds, 3),
        "clouds": generated,
    }


def cut(cloud: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The points of ``cloud`` on one side of a random plane through its centre."""
    normal = torch.randn(3, generator=g)
    return cloud[(cloud - cloud.mean(dim=0)) @ normal > 0]


def completion(prior, *, per_class: int, steps: int, sampler: str, seed: int = 0) -> dict:
    points = prior.sample_shape[0]
    truth, labels = held_out(per_class, points, HELD_OUT_SEED + 2)
    g = torch.Generator().manual_seed(seed)
    rows = {"completed": {"cd": [], "emd": []}, "half alone": {"cd": [], "emd": []}}
    examples = []
    start = time.perf_counter()
    for cloud, label in zip(truth, labels, strict=True):
        half = cut(cloud, g)
        done = complete(prior, half, n=1, steps=steps, sampler=sampler, cond=Cond(labels=label[None]), generator=g)[0].cpu()
        resampled = half[torch.randint(len(half), (points,), generator=g)]
        for name, x in (("completed", done), ("half alone", resampled)):
            rows[name]["cd"].append(metrics.chamfer(x, cloud))
            rows[name]["emd"].append(metrics.emd(x, cloud))
        examples.append((done, len(half)))
    seconds = (time.perf_counter() - start) / len(truth)
    table = {name: {k: round(float(np.mean(v)), 5) for k, v in row.items()} for name, row in rows.items()}
    return {**table, "seconds_per_cloud": round(seconds, 3), "examples": examples}


def evaluate(prior, *, per_class: int = 6, steps: int = 100, sampler: str = "ddpm", seed: int = 0) -> dict:
    """Generation and completion figures of ``prior`` (see the module docstring); the clouds under ``"clouds"`` / ``"examples"``."""
    gen = generation(prior, per_class=per_class, steps=steps, sampler=sampler, seed=seed)
    comp = completion(prior, per_class=max(1, per_class // 3), steps=steps, sampler=sampler, seed=seed)
    protocol = {"per_class": per_class, "points": prior.sample_shape[0], "steps": steps, "sampler": sampler, "seed": seed}
    protocol["completion_per_class"] = max(1, per_class // 3)
    return {"protocol": protocol, "generation": gen, "completion": comp}


def write_pictures(folder: Path, clouds: torch.Tensor, examples: list, per_class: int) -> None:
    """``samples.png`` (the first generated cloud of every class, from two sides) and ``completion.png`` (known points orange)."""
    from diff_3d.points.turntable import render_points
    from diffcore.tour import encode_png, image_grid, write_atomic

    firsts = clouds[::per_class]
    views = [render_points(c, size=96, azimuth=a) for a in (30.0, 210.0) for c in firsts]
    write_atomic(folder / "samples.png", encode_png(image_grid(torch.stack(views), nrow=len(firsts))))
    done = [render_points(c, size=96, azimuth=a, known=k) for a in (30.0, 210.0) for c, k in examples[:: max(1, len(examples) // 5)][:5]]
    write_atomic(folder / "completion.png", encode_png(image_grid(torch.stack(done), nrow=len(done) // 2)))


def main(argv=None) -> None:
    from diff_3d.points.zoo import load, weights_folder

    parser = argparse.ArgumentParser(description="Measure zoo:shapes: generation and completion against held-out shapes.")
    parser.add_argument("--path", type=Path, default=None, help="a trained folder (default: the shipped weights)")
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    folder = args.path or weights_folder()
    result = evaluate(load(folder), per_class=args.per_class, steps=args.steps)
    write_pictures(folder, result["generation"].pop("clouds"), result["completion"].pop("examples"), args.per_class)
    (folder / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
