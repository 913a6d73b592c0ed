"""Conditional generation measured on held-out moving digits: each task, each method, PSNR and the digit classifier.

The seed's claim, from Video Diffusion Models (Ho et al. 2022, sec. 3.1 and 4.3.2): reconstruction
guidance makes conditional samples that agree with the conditioning far better than
replacement. Here both run on the same prior, clips, seeds and steps, for three tasks on held-out
clips (digits of the zoo's test split):

- ``interpolation``: 7-frame clips with frames 0, 2, 4, 6 given; frames 1, 3, 5 made;
- ``extension``: 8-frame clips with frames 0-3 given; frames 4-7 made (the digit moves at a
  constant velocity, so the continuation is determined up to bounces);
- ``super-resolution``: 8-frame clips given average-pooled to 16 x 16; all frames made at 32 x 32.

For each: PSNR (dB, images in [-1, 1], peak-to-peak 2) of the made frames against the real ones,
and the share of made frames the zoo's digit classifier labels as the clip's digit. The prior is
used unconditionally (its null label: the label would give the answer away). Reference rows:
the trivial estimate of each task (interpolation: the mean of the two neighbouring frames;
extension: the last given frame repeated; super-resolution: nearest-neighbour upsampling) and the
same methods with the image-only baseline (the prior's image model on each frame alone).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from diff_video.operators import FrameSuperResolution, TemporalSubsampling
from diff_video.reconstruction_guidance import ReconstructionGuidance
from diff_video.replacement import Replacement

TASKS = ("interpolation", "extension", "super-resolution")


def psnr(x: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), over all values of the set."""
    mse = float((x.double().clamp(-1, 1) - reference.double()).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def problem(task: str, clips: torch.Tensor):
    """(operator, y, made-frame indices, truth of the made frames, trivial estimate of them) for ``task`` on clips (N, F, 1, 32, 32)."""
    if task == "interpolation":
        clips = clips[:, :7]
        op = TemporalSubsampling(tuple(clips.shape[1:]), every=2)
        made = [1, 3, 5]
        trivial = (clips[:, [0, 2, 4]] + clips[:, [2, 4, 6]]) / 2
    elif task == "extension":
        op = TemporalSubsampling(tuple(clips.shape[1:]), first=4)
        made = [4, 5, 6, 7]
        trivial = clips[:, 3:4].expand(-1, 4, -1, -1, -1)
    elif task == "super-resolution":
        op = FrameSuperResolution(tuple(clips.shape[1:]), factor=2)
        made = list(range(clips.shape[1]))
        trivial = op.A_pinv(op.A(clips))  # nearest-neighbour upsampling of the block means
    else:
        raise ValueError(f"unknown task {task!r}")
    return op, op.A(clips), made, clips[:, made], trivial


def methods(weights=(2.0, 5.0)) -> dict[str, Any]:
    out = {"replacement": Replacement()}
    out.update({f"reconstruction guidance w={w:g}": ReconstructionGuidance(weight=w) for w in weights})
    return out


def measure(
    video_prior,
    image_prior,
    clips,
    labels,
    classify,
    *,
    steps: int = 20,
    seed: int = 0,
    weights=(2.0, 5.0),
    image_weights=(5.0,),
    tasks=TASKS,
    log=None,
) -> list[dict[str, Any]]:
    """The table's rows: for each task, the trivial estimate, then replacement and reconstruction guidance
    (at ``weights`` with the video prior, ``image_weights`` with the image-only prior).

    ``video_prior`` and ``image_prior`` are unconditional video priors (the second a
    :class:`~diff_video.per_frame.PerFrame`); ``classify(videos) -> (N, F)`` labels frames.
    """
    from diff_video.tasks import frames_prior

    rows = []
    for task in tasks:
        op, y, made, truth, trivial = problem(task, clips)
        rows.append(
            {
                "task": task,
                "method": "trivial estimate",
                "prior": "-",
                "psnr": round(psnr(trivial, truth), 2),
                "digit agreement": _agreement(classify, trivial, labels),
                "seconds": 0.0,
            }
        )
        for prior_name, prior, chosen in (("video", video_prior, weights), ("image-only", image_prior, image_weights)):
            prior = frames_prior(prior, op.x_shape[0])
            for name, solver in methods(chosen).items():
                began = time.perf_counter()
                x = solver(prior, op, y, steps=steps, generator=torch.Generator().manual_seed(seed))
                seconds = time.perf_counter() - began
                made_frames = x[:, made].clamp(-1, 1)
                row = {
                    "task": task,
                    "method": name,
                    "prior": prior_name,
                    "psnr": round(psnr(made_frames, truth), 2),
                    "digit agreement": _agreement(classify, made_frames, labels),
                    "seconds": round(seconds, 1),
                }
                rows.append(row)
                if log is not None:
                    log(row)
    return rows


def _agreement(classify, frames: torch.Tensor, labels: torch.Tensor) -> float:
    return round(float((classify(frames) == labels[:, None]).double().mean()), 3)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table, one block of rows per task."""
    columns = ["task", "method", "prior", "psnr", "digit agreement", "seconds"]
    lines = ["| " + " | ".join(columns) + " |", "|---|---|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def run(*, n: int = 8, steps: int = 20, seed: int = 0, weights=(2.0, 5.0), image_weights=(5.0,), tasks=TASKS, log=None) -> dict[str, Any]:
    """The benchmark on ``zoo:moving-digits`` and ``n`` held-out clips; returns the protocol and the rows."""
    from diff_video.data import held_out_clips
    from diff_video.evaluate import _zoo, classify
    from diff_video.per_frame import PerFrame
    from diff_video.prior import image_prior
    from diff_video.zoo import load
    from diffcore.priors import Conditioned

    DigitClassifier, digits, _ = _zoo()
    classifier = DigitClassifier.fit(digits().train)
    prior = load(frames=8)
    video = Conditioned(prior, prior.null_cond)
    alone_image = image_prior(prior)
    alone = Conditioned(PerFrame(alone_image, 8), prior.null_cond)
    held = held_out_clips(n, 8, seed=seed)
    rows = measure(
        video,
        alone,
        held.videos(),
        held.labels,
        lambda v: classify(classifier, v),
        steps=steps,
        seed=seed,
        weights=weights,
        tasks=tasks,
        log=log,
    )
    protocol = {
        "clips": n,
        "frames": 8,
        "steps": steps,
        "sampler": "ddim (eta 0)",
        "seed": seed,
        "conditioning": "null label (unconditional)",
        "threads": torch.get_num_threads(),
    }
    return {"protocol": protocol, "rows": rows}


__all__ = ["TASKS", "markdown", "measure", "methods", "problem", "psnr", "run"]
