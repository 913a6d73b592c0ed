"""One image to 3-D through zoo:views (docs/3d.md, "One image to 3-D"): held-out views of procedural scenes.

For each of a few held-out scenes (diff_3d.views.scenes.random_scene, drawn from the held-out generator), one 32x32
reference view (azimuth 0, elevation 20, radius 2.2) is distilled into a 32^3 voxel grid by
diff_3d.views.image_to_3d (SDS through zoo:views with the reference's reconstruction term), against the same
loop with the reconstruction term alone (no prior: what one view gives by itself). Reported: PSNR of eight
held-out views around the scene against the renderer's truth, and of the reference view.

    python tools/bench/views_image_to_3d.py --out build/views-image-to-3d   # results.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import diffcore
from diff_3d.cameras import CameraSampler, orbit_cameras
from diff_3d.metrics import view_psnr
from diff_3d.views.data import split_generator
from diff_3d.views.image_to_3d import image_to_3d
from diff_3d.views.scenes import random_scene


class NoPrior(torch.nn.Module):
    """A distiller that adds nothing: the reconstruction term alone."""

    def loss(self, prior, images, cond, **kwargs):
        from diffcore.protocols import Distillation

        return Distillation(images.sum() * 0.0, {})

    def update(self, *args, **kwargs):
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--guidance", type=float, default=3.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    prior = diffcore.create("prior", "zoo:views")
    reference_camera = orbit_cameras(torch.tensor([0.0]), 20.0, 2.2, fov=50.0, size=32)
    cameras = CameraSampler(size=32, radius=(2.2, 2.2), elevation=(0.0, 40.0), fov=(50.0, 50.0))
    held_out = cameras.held_out(8)
    g = split_generator(11, "held-out")
    rows = []
    start = time.time()
    for k in range(args.scenes):
        scene = random_scene(g)
        reference = scene.render(reference_camera)
        truth = scene.render(held_out)
        row = {"scene": k, "primitives": list(scene.kinds)}
        for name, distiller in (("sds+reference", None), ("reference only", NoPrior())):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(k)
                rep = diffcore.create("representation", "voxel", resolution=32, samples=64)
                image_to_3d(
                    prior,
                    reference,
                    reference_camera,
                    rep,
                    steps=args.steps,
                    generator=torch.Generator().manual_seed(k),
                    cameras=cameras,
                    guidance_scale=args.guidance,
                    distiller=distiller,
                )
            rep.eval()
            row[name] = {
                "held_out_psnr": round(view_psnr(rep, truth, held_out), 2),
                "reference_psnr": round(view_psnr(rep, reference, reference_camera), 2),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {name: round(sum(r[name]["held_out_psnr"] for r in rows) / len(rows), 2) for name in ("sds+reference", "reference only")}
    results = {
        "steps": args.steps,
        "guidance": args.guidance,
        "scenes": rows,
        "mean_held_out_psnr": summary,
        "minutes": round((time.time() - start) / 60, 1),
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["mean_held_out_psnr"]))


if __name__ == "__main__":
    main()
