"""Novel views from several views: 3DiM's stochastic conditioning (Watson et al. 2022, sec. 3.2).

A view-conditioned prior sees one reference at a time. 3DiM generates a set of new views one after
another; at *every* denoising step of a new view it conditions on a view drawn uniformly from all
the views available so far (the given ones and those already generated), each with its relative
pose to the view being made (:func:`diff_3d.views.poses.relative_pose`). Over the steps the sample
is pushed towards agreement with every view in the pool, which single-reference sampling does not
do, and the views it adds condition the next ones (the autoregressive part).

The steps are DDIM's (``eta = 1`` by default, the ancestral sampling 3DiM uses; ``eta = 0`` is the
deterministic sampler), on the prior's schedule, with classifier-free guidance of strength
``guidance`` where it is not 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diff_3d.views.poses import _poses, relative_pose
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import Cond


def _predict(prior, x, t, cond: Cond, guidance: float):
    if guidance == 1.0:
        return prior.predict(x, t, cond)
    from diffcore.priors import Guided

    return Guided(prior, guidance, cond).predict(x, t)


@torch.no_grad()
def stochastic_conditioning(
    prior,
    views: torch.Tensor,
    cameras,
    targets,
    *,
    steps: int = 50,
    generator: torch.Generator,
    guidance: float = 1.0,
    eta: float = 1.0,
    callback: Callable[[int, int, int], None] | None = None,
) -> torch.Tensor:
    """New views (K, C, H, W) at the ``targets`` camera-to-world matrices (K, 3, 4), one after another.

    Args:
        prior: a view-conditioned prior (``Cond(image=reference, camera=relative pose)``).
        views: the given views (M, C, H, W) in [-1, 1]; cameras: their camera-to-world matrices (M, 3, 4) or (M, 4, 4).
        targets: the cameras of the views to make, in order (each joins the pool once made).
        steps, eta: DDIM's steps and eta; guidance: classifier-free guidance's strength.
        generator: the noise and the choice of the conditioning view at each step.
        callback: ``callback(target, step, view)`` with the index in the pool of the view each step conditioned on.
    """
    from diffcore.protocols import check_prior_attributes
    from diffcore.samplers import ddim_step, initial_noise

    check_prior_attributes(prior)
    if not {"image", "camera"} <= set(prior.accepts):
        raise DiffcoreError("stochastic conditioning needs a view-conditioned prior: Cond(image=reference, camera=relative pose)")
    views = torch.as_tensor(views)
    if views.ndim != 4 or views.shape[0] < 1:
        raise ShapeError(f"views have shape {tuple(views.shape)}; expected (M, C, H, W) with M >= 1")
    cams, tgts = _poses(cameras, "the views' cameras"), _poses(targets, "the target cameras")
    if cams.shape[0] != views.shape[0]:
        raise ShapeError(f"{views.shape[0]} views and {cams.shape[0]} cameras; expected one camera per view")
    pool_views, pool_cams = list(views), list(cams)
    ts = prior.schedule.timesteps(steps)
    made = []
    for k in range(tgts.shape[0]):
        x = initial_noise(prior, 1, ts[0], generator=generator, dtype=views.dtype)
        for i in range(len(ts) - 1):
            j = int(torch.randint(len(pool_views), (1,), generator=generator))
            if callback is not None:
                callback(k, i, j)
            rel = relative_pose(pool_cams[j][None], tgts[k : k + 1])
            pred = _predict(prior, x, ts[i], Cond(image=pool_views[j][None], camera=rel), guidance)
            x = ddim_step(pred.x0, pred.eps, prior.schedule, ts[i], ts[i + 1], eta=eta, generator=generator)
        view = x[0].clamp(-1, 1)
        made.append(view)
        pool_views.append(view)
        pool_cams.append(tgts[k])
    return torch.stack(made)
