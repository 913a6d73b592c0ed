"""diff-3d's section of the tour: a known scene recovered by distillation, and zoo:digits distilled into 2-D and 3-D.

Live runs, sized for about a minute on a 2-core CPU (``--quick``: fewer steps):

1. the blob scene's exact view-conditioned prior (``analytic-scene``) distilled by SDS into a 32^3
   voxel grid at 32x32: a turntable of the scene next to the recovery, and the held-out PSNR;
2. zoo:digits, a 16x16 class-conditional prior, distilled by SDS (guidance 3) into free images, one
   per label, with the zoo classifier's verdict;
3. the same prior distilled into a voxel grid seen from the front (azimuth within 25 degrees): a
   3-D digit, and its turntable sweep.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import diffcore
from diff_3d.cameras import CameraSampler
from diff_3d.conditioning import condition
from diff_3d.distill import distill
from diff_3d.distillers import SDS
from diff_3d.export import gif_bytes, turntable_frames
from diff_3d.validation import recover


def gif(tour, name: str, frames: torch.Tensor, caption: str) -> None:
    """A looping GIF in the report."""
    tour.animation(name, gif_bytes(frames), caption=caption)


def upscale(frames: torch.Tensor, factor: int = 3) -> torch.Tensor:
    return F.interpolate(frames, scale_factor=factor, mode="nearest")


def section(tour) -> None:
    quick = tour.quick
    # 1. the known scene
    steps = 80 if quick else 250
    recovered = recover("sds", "voxel", steps=steps, size=32, eval_every=steps)
    views = recovered.cameras.turntable(24)
    with torch.no_grad():
        pair = torch.cat([recovered.prior.scene.render(views), turntable_frames(recovered.representation, views)], dim=-1)
    tour.text(
        "**Score distillation recovers a known scene.** The prior `analytic-scene` knows the render of a scene of "
        "coloured blobs from every camera (its clean distribution given a camera is a narrow Gaussian around that render), "
        f"so SDS should turn a blank voxel grid into the scene. {steps} iterations at 32x32; left the scene, right the grid."
    )
    gif(
        tour,
        "recovered-scene",
        upscale(pair),
        f"The blob scene (left) and the voxel grid distilled from its exact prior (right), {steps} SDS iterations",
    )
    tour.metric("held-out PSNR of the recovered scene", round(recovered.psnr, 2), unit="dB")

    # 2. 2-D distillation from a class label
    prior = diffcore.create("prior", "zoo:digits")
    labels = [3, 7] if quick else list(range(10))
    images = []
    for label in tour.progress(labels, "2-D digits"):
        image = diffcore.create("representation", "image", size=16, channels=1)
        distill(
            prior,
            image,
            SDS(guidance_scale=3.0),
            steps=100 if quick else 150,
            lr=0.05,
            cond=condition(prior, label=label),
            generator=tour.generator(label),
        )
        images.append(image.render(None).detach())
    drawn = torch.cat(images)
    tour.image(
        "digits-2d",
        drawn,
        caption=f"SDS from zoo:digits with each label {labels} (guidance 3), one free 16x16 image each",
        nrow=len(labels),
    )
    from diff_zoo import data
    from diff_zoo.classifier import DigitClassifier

    verdict = DigitClassifier.fit(data.digits().train).predict(drawn).tolist()
    tour.table(
        "digits-2d-labels",
        [{"label asked": a, "zoo classifier says": b} for a, b in zip(labels, verdict)],
        caption="What the zoo's classifier reads",
    )
    tour.metric("2-D digits labelled as asked", sum(a == b for a, b in zip(labels, verdict)) / len(labels))

    # 3. a 3-D digit
    cameras = CameraSampler(size=32, azimuth=(-25.0, 25.0), elevation=(-10.0, 15.0), fov=(50.0, 50.0), radius=(2.4, 2.6))
    grid = diffcore.create("representation", "voxel", resolution=32, background=-1.0)
    steps = 60 if quick else 300
    distill(
        prior,
        grid,
        SDS(guidance_scale=3.0),
        steps=steps,
        lr=0.05,
        cond=condition(prior, label=3),
        cameras=cameras,
        generator=tour.generator(3),
    )
    gif(
        tour,
        "digit-3d",
        upscale(turntable_frames(grid, cameras.turntable(16))),
        f"A voxel '3' distilled from zoo:digits over front views (azimuth within 25 degrees), {steps} SDS iterations",
    )
