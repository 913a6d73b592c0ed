"""The measurements of ``zoo:views``' model card: novel views against the renderer's ground truth.

Held-out pairs (:func:`diff_3d.views.data.pairs` from the held-out generator: scenes and cameras
training never drew) give a reference view, the relative pose and the true target view. The prior
draws the target view (DDIM, ``steps`` steps, classifier-free guidance of strength ``guidance``:
``Guided(prior, guidance, Cond(image=reference, camera=relative))``); PSNR and SSIM
(:mod:`diff_3d.views.metrics`) compare it with the truth. Two baselines frame the numbers:

- ``copy``: the reference view itself as the guess (what a prior that ignored the camera would
  do at best, and the bar the issue sets);
- ``background``: a uniform image of the scenes' background colour (what knowing nothing gives).

Also reported: the mean of ``draws`` samples per pair (a posterior-mean estimate: PSNR rewards it
over any single sample) when ``draws > 1``.
"""

from __future__ import annotations

import time

import torch

from diff_3d.cameras import CameraSampler
from diff_3d.views.data import CAMERAS, pairs, split_generator
from diff_3d.views.metrics import psnr, ssim
from diffcore.protocols import Cond


def novel_views(
    prior, reference: torch.Tensor, relative: torch.Tensor, *, generator: torch.Generator, steps: int = 50, guidance: float = 1.0
):
    """Views (N, C, H, W) drawn from a view-conditioned ``prior`` for references (N or 1, C, H, W) and relative poses (N, 3, 4)."""
    from diffcore.priors import Guided
    from diffcore.samplers import sample

    cond = Cond(image=reference, camera=relative)
    n = relative.shape[0]
    if guidance == 1.0:
        return sample(prior, n, steps=steps, sampler="ddim", cond=cond, generator=generator)
    return sample(Guided(prior, guidance, cond), n, steps=steps, sampler="ddim", generator=generator)


def _scores(images: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    return {"psnr": round(float(psnr(images, truth).mean()), 3), "ssim": round(float(ssim(images, truth).mean()), 4)}


@torch.no_grad()
def evaluate(
    prior,
    *,
    n: int = 64,
    seed: int = 0,
    steps: int = 50,
    guidance: float = 1.0,
    draws: int = 1,
    batch: int = 32,
    cameras: CameraSampler = CAMERAS,
) -> dict:
    """PSNR and SSIM of ``prior``'s novel views on ``n`` held-out pairs, and of the baselines (see the module docstring)."""
    data = pairs(n, split_generator(seed, "held-out"), cameras=cameras)
    g = torch.Generator().manual_seed(seed)
    start = time.time()
    samples = []
    for _ in range(max(1, int(draws))):
        chunks = [
            novel_views(prior, data.reference[i : i + batch], data.relative[i : i + batch], generator=g, steps=steps, guidance=guidance)
            for i in range(0, n, batch)
        ]
        samples.append(torch.cat(chunks).clamp(-1, 1))
    first = samples[0]
    background = torch.full_like(data.target, float(data.scenes[0].background))
    result = {
        "pairs": n,
        "steps": steps,
        "guidance": guidance,
        "model": _scores(first, data.target),
        "copy": _scores(data.reference, data.target),
        "background": _scores(background, data.target),
        "seconds": round(time.time() - start, 1),
    }
    if len(samples) > 1:
        result["model_mean_of_draws"] = {**_scores(torch.stack(samples).mean(0), data.target), "draws": len(samples)}
    return result


@torch.no_grad()
def evaluate_stochastic(
    prior, *, n: int = 16, views: int = 2, seed: int = 0, steps: int = 50, guidance: float = 1.0, eta: float = 1.0
) -> dict:
    """One new view of each of ``n`` held-out scenes from ``views`` given views: 3DiM's stochastic conditioning on all of
    them against the same sampler on the first view alone (:func:`diff_3d.views.sampler.stochastic_conditioning`)."""
    from diff_3d.views.sampler import stochastic_conditioning
    from diff_3d.views.scenes import random_scene

    g = split_generator(seed + 7, "held-out")
    several, single, truths, copies = [], [], [], []
    start = time.time()
    for _ in range(n):
        scene = random_scene(g)
        cams = CAMERAS.sample(views + 1, g)
        rendered = scene.render(cams)
        given, c2w, target = rendered[:views], cams.camera_to_worlds[:views], cams.camera_to_worlds[views:]
        several.append(stochastic_conditioning(prior, given, c2w, target, steps=steps, generator=g, guidance=guidance, eta=eta))
        single.append(stochastic_conditioning(prior, given[:1], c2w[:1], target, steps=steps, generator=g, guidance=guidance, eta=eta))
        truths.append(rendered[views:])
        copies.append(rendered[:1])
    truth = torch.cat(truths)
    return {
        "scenes": n,
        "given_views": views,
        "steps": steps,
        "eta": eta,
        "guidance": guidance,
        "stochastic": _scores(torch.cat(several), truth),
        "first_view_only": _scores(torch.cat(single), truth),
        "copy_first_view": _scores(torch.cat(copies), truth),
        "seconds": round(time.time() - start, 1),
    }
