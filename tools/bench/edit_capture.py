"""Editing the synthetic capture (docs/3d.md, "Editing a capture"): Instruct-NeRF2NeRF's iterative dataset update against per-view edits.

The capture: diff_3d.editing.capture's scene rendered from 30 cameras at 32x32. The editor: SDEdit with a
prior and a condition (default zoo:textures, label brick, strength 0.5, 20 DDIM steps over the schedule).
Per-view edits: every view of the capture edited on its own. The update: a voxel grid fitted to the capture,
then trained on while every `edit_every` steps one view is re-rendered, edited and written back. Reported:
PSNR of the final renders against the per-view edits and against the final dataset, and the multi-view
consistency error (diff_3d.editing.consistency) of the original views, the per-view edits, the final dataset
and the final renders.

    python tools/bench/edit_capture.py --out build/edit-capture   # writes results.json and edit-capture.png there
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import diffcore
from diff_3d.conditioning import condition
from diff_3d.editing.capture import read_capture, synthetic_capture
from diff_3d.editing.consistency import consistency_error
from diff_3d.editing.edit import sdedit
from diff_3d.editing.in2n import iterative_dataset_update
from diff_3d.views.metrics import psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prior", default="zoo:textures")
    parser.add_argument("--label", default="brick")
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--reconstruct-steps", type=int, default=300)
    parser.add_argument("--edit-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        synthetic_capture(Path(folder) / "capture", views=30, size=32)
        capture = read_capture(Path(folder) / "capture")
    prior = diffcore.create("prior", args.prior)
    cond = condition(prior, label=args.label)
    start = time.time()
    per_view = torch.cat(
        [
            sdedit(
                prior, capture.images[i : i + 1], cond=cond, strength=args.strength, generator=torch.Generator().manual_seed(args.seed + i)
            )
            for i in range(len(capture))
        ]
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        rep = diffcore.create("representation", "voxel", resolution=32, samples=64)
    record = iterative_dataset_update(
        rep,
        capture,
        prior,
        cond=cond,
        steps=args.steps,
        reconstruct_steps=args.reconstruct_steps,
        edit_every=args.edit_every,
        strength=args.strength,
        generator=torch.Generator().manual_seed(args.seed),
    )
    rep.eval()
    with torch.no_grad():
        renders = rep.render(capture.cameras).clamp(-1, 1)

    def score(images):
        return round(consistency_error(images, capture.cameras, capture.scene), 4)

    results = {
        "prior": args.prior,
        "label": args.label,
        "strength": args.strength,
        "steps": args.steps,
        "reconstruct_steps": args.reconstruct_steps,
        "edit_every": args.edit_every,
        "views_edited": len(record.edited),
        "psnr_renders_vs_per_view_edits": round(float(psnr(renders, per_view).mean()), 2),
        "psnr_renders_vs_final_dataset": round(float(psnr(renders, record.dataset).mean()), 2),
        "psnr_renders_vs_original": round(float(psnr(renders, capture.images).mean()), 2),
        "psnr_per_view_edits_vs_original": round(float(psnr(per_view, capture.images).mean()), 2),
        "consistency": {
            "original": score(capture.images),
            "per_view_edits": score(per_view),
            "final_dataset": score(record.dataset),
            "renders": score(renders),
        },
        "minutes": round((time.time() - start) / 60, 1),
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    from PIL import Image

    rows = [capture.images[::5], per_view[::5], record.dataset[::5], renders[::5]]
    grid = torch.cat([torch.cat(list(row), dim=-1) for row in rows], dim=-2)
    pixels = ((grid + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    Image.fromarray(pixels).resize((pixels.shape[1] * 2, pixels.shape[0] * 2), Image.Resampling.NEAREST).save(args.out / "edit-capture.png")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
