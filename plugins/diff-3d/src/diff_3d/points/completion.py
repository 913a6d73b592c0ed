"""Shape completion by replacement: the known points are fixed, an unconditional point-cloud prior generates the rest.

A partial cloud ``y`` (K, 3) becomes the first K of the P points of every sample. The sampler runs
on all P points; after each step from ``t`` to ``s`` the known points are replaced by a draw of the
forward process from ``y``, ``x_s[:K] := alpha_s y + sigma_s eps`` (Song et al. 2021, "Score-Based
Generative Modeling through SDEs", appendix I: imputation), and at the end they are ``y`` itself.
The network sees the known points beside the unknown ones at every step (the set is one cloud to
it), so the generated points arrange themselves around them. PVD (Zhou et al. 2021, sec. 4.2)
completes shapes the same way, with the partial points held fixed while the rest is denoised, but
with a model trained for it; here the generation prior is used as it is.

>>> import torch
>>> from diff_3d.points.network import PointVoxelNet
>>> from diff_3d.points.prior import PointCloudPrior
>>> prior = PointCloudPrior(PointVoxelNet(width=16, resolution=4, blocks=1, voxel_width=8), points=48)
>>> y = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
>>> x = complete(prior, y, n=2, steps=4, generator=torch.Generator().manual_seed(0))
>>> x.shape, torch.equal(x[:, :20], y.expand(2, -1, -1))
(torch.Size([2, 48, 3]), True)
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import Cond
from diffcore.samplers import ddim_step, ddpm_step

#: The fewest known points a completion accepts.
MIN_PARTIAL = 16
SAMPLERS = ("ddpm", "ddim")


def check_partial(partial, points: int) -> torch.Tensor:
    """``partial`` as float32 (K, 3), checked: finite coordinates, ``MIN_PARTIAL <= K < points``."""
    y = torch.as_tensor(partial)
    if y.ndim != 2 or y.shape[-1] != 3:
        raise ShapeError(f"the partial cloud has shape {tuple(y.shape)}; expected points (K, 3)")
    y = y.float()
    if not bool(torch.isfinite(y).all()):
        bad = int((~torch.isfinite(y)).any(dim=1).sum())
        raise DiffcoreError(f"the partial cloud has {bad} point(s) with non-finite coordinates; expected finite x, y, z")
    if y.shape[0] < MIN_PARTIAL:
        raise DiffcoreError(f"the partial cloud has {y.shape[0]} points; completion needs at least {MIN_PARTIAL}")
    if y.shape[0] >= points:
        raise DiffcoreError(f"the partial cloud has {y.shape[0]} points, not fewer than the {points} of a completed cloud; raise --points")
    return y


@torch.no_grad()
def complete(
    prior,
    partial,
    *,
    n: int = 1,
    steps: int = 100,
    sampler: str = "ddpm",
    cond: Cond | None = None,
    generator: torch.Generator | None = None,
    callback=None,
) -> torch.Tensor:
    """``n`` completions (n, P, 3) of ``partial`` (K, 3) by ``prior`` (P = ``prior.sample_shape[0]``); the first K points are ``partial``.

    ``sampler``: ``"ddpm"`` (ancestral, Ho et al. 2020) or ``"ddim"`` (deterministic, Song et al. 2021)
    between the replacements; ``cond`` as the prior takes it (``Cond(labels=...)`` for ``zoo:shapes``).
    """
    if sampler not in SAMPLERS:
        raise DiffcoreError(f"unknown completion sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    if int(n) < 1 or int(steps) < 1:
        raise DiffcoreError(f"n and steps must be positive, got n={n}, steps={steps}")
    points = int(prior.sample_shape[0])
    y = check_partial(partial, points).to(prior.device)
    k = y.shape[0]
    schedule = prior.schedule
    ts = schedule.timesteps(int(steps))
    x = torch.randn(int(n), points, 3, generator=generator, dtype=torch.float32).to(prior.device)
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        pred = prior.predict(x, t, cond)
        if sampler == "ddpm":
            x = ddpm_step(x, pred.x0, schedule, t, s, generator)
        else:
            x = ddim_step(pred.x0, pred.eps, schedule, t, s)
        a_s, s_s = (float(v) for v in (schedule.alpha(torch.as_tensor(s)), schedule.sigma(torch.as_tensor(s))))
        noise = torch.randn(int(n), k, 3, generator=generator, dtype=torch.float32).to(prior.device)
        x[:, :k] = a_s * y + s_s * noise
        if callback is not None:
            callback(i, t, x, pred)
    x[:, :k] = y
    return x


__all__ = ["MIN_PARTIAL", "check_partial", "complete"]
