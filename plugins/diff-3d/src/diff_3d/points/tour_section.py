"""The tour's point-cloud section: zoo:shapes generates one shape of each class and completes halves of held-out shapes.

Live runs on the shipped prior (a few seconds on a CPU; ``--quick``: fewer steps and shapes):

1. one cloud per class (sphere, box, torus, cylinder, cone) from the kernel's DDPM sampler, as a
   turntable GIF, and the share whose nearest held-out shape (Chamfer) has the class asked for;
2. held-out shapes cut in half by a plane and completed by replacement, the known half orange, with
   the Chamfer distance to the whole shape against the half alone.
"""

from __future__ import annotations

import torch

import diffcore
from diff_3d.points import metrics
from diff_3d.points.completion import complete
from diff_3d.points.evaluate import HELD_OUT_SEED, cut, held_out
from diff_3d.points.shapes import SHAPES
from diff_3d.points.turntable import turntable
from diff_3d.points.zoo import is_trained, weights_folder
from diffcore.protocols import Cond


def section(tour) -> None:
    if not is_trained(weights_folder()):
        tour.text("**zoo:shapes** is not shipped in this installation: train it with `python -m diff_3d.points.train --out DIR`.")
        return
    quick = tour.quick
    steps, frames = (30, 12) if quick else (100, 24)
    prior = diffcore.create("prior", "zoo:shapes", points=384 if quick else 512)
    labels = torch.arange(len(SHAPES))
    clouds = diffcore.sample(prior, len(labels), steps=steps, sampler="ddpm", cond=Cond(labels=labels), generator=tour.generator(0))
    reference, ref_labels = held_out(2, prior.sample_shape[0], HELD_OUT_SEED)
    nearest = metrics.pairwise(clouds, reference, distance="cd").argmin(axis=1)
    match = float((ref_labels[torch.as_tensor(nearest)] == labels).double().mean())
    tour.text(
        "**Diffusion on point clouds.** `zoo:shapes` is a point-voxel diffusion model (PVD, Zhou et al. 2021) trained on this "
        "CPU on procedural shapes; its samples are clouds (P, 3), so the kernel's samplers draw them. "
        f"One cloud per class ({', '.join(SHAPES)}), {steps} DDPM steps."
    )
    tour.animation(
        "shapes", torch.cat([turntable(c, frames=frames, size=96) for c in clouds], dim=3), caption="One generated cloud per class", fps=12
    )
    tour.metric("generated clouds nearest a held-out shape of their class", round(match, 2))

    truth, truth_labels = held_out(1, prior.sample_shape[0], HELD_OUT_SEED + 2)
    chosen = [1, 2] if quick else list(range(len(SHAPES)))
    g = tour.generator(1)
    done, half_cd, done_cd = [], [], []
    for i in tour.progress(chosen, "completion"):
        half = cut(truth[i], g)
        x = complete(prior, half, steps=steps, cond=Cond(labels=truth_labels[i : i + 1]), generator=g)[0]
        done.append(turntable(x, frames=frames, size=96, known=len(half)))
        done_cd.append(metrics.chamfer(x, truth[i]))
        half_cd.append(metrics.chamfer(half, truth[i]))
    tour.text(
        "**Shape completion by replacement.** Held-out shapes cut in half by a plane through their centre: the known half "
        "(orange) is put back at every step, the prior generates the rest around it."
    )
    tour.animation("completion", torch.cat(done, dim=3), caption="Completed halves (known points orange)", fps=12)
    tour.metric("Chamfer distance to the whole shape, completed", round(sum(done_cd) / len(done_cd), 4))
    tour.metric("Chamfer distance to the whole shape, the half alone", round(sum(half_cd) / len(half_cd), 4))


__all__ = ["section"]
