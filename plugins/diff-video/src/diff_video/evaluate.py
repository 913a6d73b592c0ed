"""The model card's measurements of ``zoo:moving-digits``: frame quality, motion consistency, Frechet distances.

Clips are compared with held-out clips (digits of the zoo's test split, never trained on) and
with the image-only baseline: the un-inflated image model inside the prior
(:func:`diff_video.prior.image_prior`) applied to each frame on its own, the same labels and seeds.

- **Locating the digit**: in each frame, the 16 x 16 window holding the most ink (``(x + 1) / 2``),
  the one nearest the ink's centroid among ties, is the digit (:func:`locate`); the ink-weighted
  centroid is the digit's position.
- **Frame quality**: the zoo's digit classifier (:class:`diff_zoo.classifier.DigitClassifier`, an
  SVC on the zoo's training digits) on every window: the share of frames classified as the clip's
  label (for generated clips, the label they were drawn for).
- **Motion consistency**: the share of frames whose class is the clip's majority class (a digit
  keeps its class), and the centroid's mean speed and mean acceleration ``|p_{f+1} - 2 p_f + p_{f-1}|``
  in pixels per frame (real clips move at a constant velocity between bounces: acceleration near 0).
- **Frechet distance of clip statistics**: each clip is summarised by :data:`FRECHET_FEATURES`
  (motion, ink, change between frames), each divided by its spread over the held-out clips, and
  sets are compared with the Frechet distance (:func:`diff_zoo.distances.frechet_distance`):
  generated vs held-out, image-only vs held-out, and training clips vs held-out (the floor set by
  sampling alone).

Generated clips are drawn twice: for the labels ``i % 10`` (frame and clip accuracy need a
label) and unconditionally (the null label), where only the temporal layers can keep a digit's
class from frame to frame: the image-only baseline draws each frame's class afresh.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from diff_video.data import DIGIT, Clips, digit_source, held_out_clips, moving_digits
from diffcore.errors import ShapeError

CLIP_FEATURES = (
    "mean speed",
    "speed std",
    "mean acceleration",
    "class consistency",
    "ink mean",
    "ink change",
    "frame change",
)
#: The statistics the Frechet distance compares: those that vary over real clips. Class consistency
#: (1 for every real clip) and ink change (0: the whole digit is always in view) are reported alone.
FRECHET_FEATURES = ("mean speed", "speed std", "mean acceleration", "ink mean", "frame change")
FRAMES = 8
STEPS = 50
SEED = 0


def _zoo():
    try:
        from diff_zoo import distances
        from diff_zoo.classifier import DigitClassifier
        from diff_zoo.data import digits
    except ImportError as exc:
        raise ImportError('the moving-digits card uses diff-zoo\'s classifier: pip install "diff-video[zoo]"') from exc
    return DigitClassifier, digits, distances


def locate(videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The digit in every frame of videos (N, F, 1, H, W): its 16 x 16 windows (N, F, 1, 16, 16) and centroids (N, F, 2) as (row, col).

    The window holds the most ink; a digit narrower than 16 pixels fits in several, and of those
    (within 0.1 % of the most ink) the one nearest the centroid-centred window is taken, which
    puts the digit where the classifier saw it in training (on held-out clips, 96.9 % of frames
    are classified right, as with the true positions; the first of the tied windows gives 92.4 %).
    """
    if videos.ndim != 5 or videos.shape[2] != 1:
        raise ShapeError(f"videos have shape {tuple(videos.shape)}; expected (N, F, 1, H, W)")
    n, f, _, h, w = videos.shape
    ink = ((videos.double() + 1) / 2).clamp(0, 1).reshape(n * f, 1, h, w)
    rows = torch.arange(h, dtype=torch.float64).reshape(1, h, 1)
    cols = torch.arange(w, dtype=torch.float64).reshape(1, 1, w)
    weights = ink[:, 0] + 1e-9
    centroid = torch.stack([(weights * rows).sum((1, 2)), (weights * cols).sum((1, 2))], 1) / weights.sum((1, 2))[:, None]
    mass = F.avg_pool2d(ink, DIGIT, stride=1).flatten(1)  # (n f, positions)
    side = w - DIGIT + 1
    grid = torch.stack(torch.meshgrid(torch.arange(h - DIGIT + 1), torch.arange(side), indexing="ij"), -1).reshape(-1, 2).double()
    distance = (grid[None] - (centroid - (DIGIT - 1) / 2)[:, None]).pow(2).sum(-1)
    distance[mass < 0.999 * mass.max(1, keepdim=True).values] = float("inf")
    corner = grid[distance.argmin(1)].long()
    frames = videos.reshape(n * f, 1, h, w)
    windows = torch.stack([frames[i, :, r : r + DIGIT, c : c + DIGIT] for i, (r, c) in enumerate(corner.tolist())])
    return windows.reshape(n, f, 1, DIGIT, DIGIT), centroid.reshape(n, f, 2)


def clip_statistics(videos: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The :data:`CLIP_FEATURES` of each clip (N, 7) float64, given the class of every frame (N, F)."""
    _, centroid = locate(videos)
    step = centroid.diff(dim=1)
    speed = step.norm(dim=-1)
    accel = step.diff(dim=1).norm(dim=-1) if centroid.shape[1] > 2 else speed.new_zeros(speed.shape[0], 1)
    majority = torch.mode(classes, dim=1).values
    consistency = (classes == majority[:, None]).double().mean(1)
    ink = ((videos.double() + 1) / 2).clamp(0, 1).flatten(2).mean(2)
    change = (videos.double().diff(dim=1)).abs().flatten(2).mean(2)
    return torch.stack(
        [speed.mean(1), speed.std(1), accel.mean(1), consistency, ink.mean(1), ink.std(1) / ink.mean(1).clamp_min(1e-6), change.mean(1)], 1
    )


def classify(classifier, videos: torch.Tensor) -> torch.Tensor:
    """The class of the digit window in every frame (N, F)."""
    windows, _ = locate(videos)
    n, f = windows.shape[:2]
    return classifier.predict(windows.reshape(n * f, 1, DIGIT, DIGIT)).reshape(n, f)


def describe(classifier, videos: torch.Tensor, labels: torch.Tensor | None) -> tuple[dict[str, float], torch.Tensor]:
    """The card's figures of one set of clips, and its clip statistics."""
    classes = classify(classifier, videos)
    stats = clip_statistics(videos, classes)
    majority = torch.mode(classes, dim=1).values
    figures = {
        "class consistency": round(float(stats[:, 3].mean()), 4),
        "mean speed": round(float(stats[:, 0].mean()), 3),
        "mean acceleration": round(float(stats[:, 2].mean()), 3),
    }
    if labels is not None:
        figures["frame accuracy"] = round(float((classes == labels[:, None]).double().mean()), 4)
        figures["clip accuracy"] = round(float((majority == labels).double().mean()), 4)
    return figures, stats


def draw(prior, labels: torch.Tensor, frames: int, *, steps: int, seed: int, batch: int = 16) -> torch.Tensor:
    """Clips of ``frames`` frames from ``prior`` (video or frames-alone), one per label, in batches, seeded per batch."""
    from diffcore import Cond
    from diffcore.samplers import sample

    out = []
    for start in range(0, len(labels), batch):
        part = labels[start : start + batch]
        g = torch.Generator().manual_seed(seed + start)
        out.append(sample(prior, len(part), steps=steps, generator=g, cond=Cond(labels=part)))
    return torch.cat(out).clamp(-1, 1)


def weights_sha256(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def evaluate(path=None, *, n: int = 64, steps: int = STEPS, frames: int = FRAMES, seed: int = SEED) -> dict[str, Any]:
    """Measure ``zoo:moving-digits`` (or the trained folder ``path``); returns what ``metrics.json`` holds."""
    from diff_video.per_frame import PerFrame
    from diff_video.prior import image_prior
    from diff_video.zoo import load, weights_folder

    DigitClassifier, digits, distances = _zoo()
    classifier = DigitClassifier.fit(digits().train)
    folder = Path(path) if path is not None else weights_folder()
    prior = load(path=folder, frames=frames)
    alone = PerFrame(image_prior(prior), frames)
    labels = torch.arange(n) % 10
    null = torch.full((n,), prior.null_label)
    began = time.perf_counter()
    sets = {"video prior": (draw(prior, labels, frames, steps=steps, seed=seed), labels)}
    seconds = time.perf_counter() - began
    sets["image-only baseline"] = (draw(alone, labels, frames, steps=steps, seed=seed), labels)
    sets["video prior, unconditional"] = (draw(prior, null, frames, steps=steps, seed=seed), None)
    sets["image-only baseline, unconditional"] = (draw(alone, null, frames, steps=steps, seed=seed), None)
    held = held_out_clips(n, frames, seed=seed)
    train = moving_digits(digit_source("train"), n, frames, generator=torch.Generator().manual_seed(seed + 1))
    sets["held-out clips"] = (held.videos(), held.labels)
    sets["training clips"] = (train.videos(), train.labels)
    figures, stats = {}, {}
    for name, (clips, clip_labels) in sets.items():
        figures[name], stats[name] = describe(classifier, clips, clip_labels)
    chosen = [CLIP_FEATURES.index(f) for f in FRECHET_FEATURES]
    reference = stats["held-out clips"][:, chosen]
    spread = reference.std(0)
    for name in sets:
        if name != "held-out clips":
            figures[name]["frechet (clip statistics)"] = round(
                distances.frechet_distance(stats[name][:, chosen] / spread, reference / spread), 3
            )
    return {
        "name": "moving-digits",
        "weights_sha256": weights_sha256(folder),
        "protocol": {
            "n": n,
            "frames": frames,
            "steps": steps,
            "sampler": "ddim",
            "eta": 0.0,
            "seed": seed,
            "labels": "i % 10, then the null label",
            "guidance": 1.0,
        },
        "figures": figures,
        "clip_features": list(FRECHET_FEATURES),
        "timing": {"seconds_per_clip": round(seconds / n, 3), "steps": steps, "frames": frames, "threads": torch.get_num_threads()},
        "classifier": "diff_zoo.classifier.DigitClassifier on the 16x16 window with the most ink",
    }


def write_card(path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics.json`` and the model card ``README.md`` into the trained folder ``path`` (default: the shipped weights)."""
    from diff_video.card import render_card
    from diff_video.zoo import read_record, weights_folder

    folder = Path(path) if path is not None else weights_folder()
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (folder / "README.md").write_text(render_card(read_record(folder), metrics))
    return folder


__all__ = [
    "CLIP_FEATURES",
    "FRECHET_FEATURES",
    "Clips",
    "classify",
    "clip_statistics",
    "describe",
    "draw",
    "evaluate",
    "locate",
    "write_card",
]
