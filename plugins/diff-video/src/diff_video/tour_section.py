"""diff-video's section of ``diffcore tour``: zoo:moving-digits clips as GIFs that play in the report.

Generated clips next to the image-only baseline (the same image model on each frame alone) and
held-out clips; a held-out clip extended and one interpolated by reconstruction guidance; the
model card's headline figures; a moving digit edited to another class with zoo:digits, frame by
frame and by Pix2Video, side by side with the source.
"""

from __future__ import annotations

import json

import torch


def gif(tour, name: str, videos: torch.Tensor, caption: str = "", fps: float = 6.0):
    """Videos (N, F, C, H, W) in [-1, 1], side by side and upscaled 4x, as a GIF that plays in the report."""
    from diff_video.io import encode_video
    from diff_video.runs import tiled

    return tour.animation(name, encode_video(tiled(videos), ".gif", fps, scale=4), caption)


def section(tour) -> None:
    from diff_video.data import held_out_clips
    from diff_video.per_frame import PerFrame
    from diff_video.prior import image_prior
    from diff_video.tasks import extend, interpolate
    from diff_video.zoo import load, weights_folder
    from diffcore import Cond
    from diffcore.priors import Conditioned
    from diffcore.samplers import sample

    steps = 8 if tour.quick else 20
    prior = load(frames=8)
    labels = torch.arange(4)
    videos = sample(prior, 4, steps=steps, generator=tour.generator(0), cond=Cond(labels=labels)).clamp(-1, 1)
    alone = sample(PerFrame(image_prior(prior), 8), 4, steps=steps, generator=tour.generator(0), cond=Cond(labels=labels)).clamp(-1, 1)
    held = held_out_clips(4, 8).videos()
    tour.text(
        "**zoo:moving-digits** is the zoo's 16x16 digits UNet inflated to space-time (temporal convolutions and attention "
        "after its spatial layers) and trained on clips of one moving digit. Below: clips drawn for the labels 0-3, the same "
        f"image model on each frame alone (the frames do not agree), and held-out clips ({steps} DDIM steps)."
    )
    gif(tour, "generated", videos, "zoo:moving-digits, labels 0, 1, 2, 3")
    gif(tour, "frames-alone", alone, "the image-only baseline: its image model on each frame independently")
    gif(tour, "held-out", held, "held-out clips (digits never trained on)")
    unconditional = Conditioned(prior, prior.null_cond)
    clip = held[:1]
    longer = extend(unconditional, clip[:, :4], 8, context=4, steps=steps, generator=tour.generator(1))
    between = interpolate(unconditional, clip[:, ::2], 2, steps=steps, generator=tour.generator(2))
    gif(
        tour,
        "extended",
        torch.cat([torch.cat([clip, clip[:, -1:].expand(1, 4, -1, -1, -1)], 1), longer]),
        "extension: 4 held-out frames (left, real clip) continued by 8 (right), reconstruction guidance",
    )
    gif(
        tour,
        "interpolated",
        torch.cat([clip[:, :7], between]),
        "interpolation: every other frame given (right), against the real clip (left)",
    )
    edits(tour)
    card = weights_folder() / "metrics.json"
    if card.is_file():
        figures = json.loads(card.read_text())["figures"]
        rows = [{"clips": name, **values} for name, values in figures.items()]
        tour.table(
            "card",
            rows,
            caption=(
                "From the model card (docs/video.md): frame accuracy by the zoo's digit classifier, motion, Frechet distance of clip "
                "statistics to held-out clips"
            ),
        )
        tour.metric("frame accuracy", figures["video prior"].get("frame accuracy"))
        tour.metric(
            "class consistency (video / frames alone)",
            f"{figures['video prior']['class consistency']} / {figures['image-only baseline']['class consistency']}",
        )


def edits(tour) -> None:
    """The synthetic moving, rotating 8 edited to a 3 with zoo:digits: source, per-frame and Pix2Video side by side."""
    import diffcore
    from diff_video.editing import EditSettings, edit_video, make_editor
    from diff_video.editing.metrics import warp_error
    from diff_video.editing.synthetic import moving_rotating_digit

    frames, steps = (8, 10) if tour.quick else (16, 20)
    digits = diffcore.create("prior", "zoo:digits")
    source, label = moving_rotating_digit(2, frames)
    settings = EditSettings(steps=steps, strength=0.7, guidance=3.0, refine=1)
    per_frame = edit_video(digits, source, 3, source=label, editor=make_editor("per-frame"), settings=settings).clamp(-1, 1)
    pix2video = edit_video(digits, source, 3, source=label, editor=make_editor("pix2video"), settings=settings).clamp(-1, 1)
    tour.text(
        f"**Video editing with an image prior** (docs/video.md): a held-out {label} moving and turning, inverted with DDIM "
        "under its class and denoised towards 3 by zoo:digits. Frame by frame, each frame's edit is its own; Pix2Video's "
        "frames read the first and the previous frame's self-attention keys and values and are pulled towards the "
        "previous frame's clean estimate, so the edit moves with the source."
    )
    gif(tour, "edited", torch.stack([source, per_frame, pix2video]), "source | per-frame edit | Pix2Video edit (8 -> 3)")
    tour.metric("warp error, per-frame / Pix2Video", f"{warp_error(source, per_frame):.4f} / {warp_error(source, pix2video):.4f}")
