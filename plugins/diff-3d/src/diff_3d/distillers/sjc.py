"""Score Jacobian Chaining with Perturb-and-Average Scoring (Wang et al. 2023, SJC, sec. 3.2-3.3).

SJC chains the prior's score with the renderer's Jacobian. The score of a clean render ``z`` is not
what a denoiser gives (renders are off the noisy manifolds it was trained on), so PAAS estimates it
from ``K`` perturbed copies at one noise level ``sigma`` (the variance-exploding ``sigma``, here
``sigma(t) / alpha(t)``) with the denoiser ``D``:

    score(z) ~ (1 / K) sum_k (D(z + sigma n_k, sigma) - z) / sigma^2      (eq. 8, averaged over K draws)

and the update ascends it scaled by ``sigma`` (the released code's variance-reduced form, which
threestudio keeps), so the loss gradient on ``z`` is

    g = -(1 / K) sum_k (D(z + sigma n_k) - z) / sigma.

In a variance-preserving prior ``D(z + sigma n) = x0_hat(alpha z + sigma(t) n)``; for a prior whose
``x0 = (x_t - sigma eps) / alpha`` this is SDS's gradient with ``w = 1`` averaged over ``K`` noise
draws, and it keeps the prior's own ``x0`` (clipped or not) where they differ. Guidance and the
noise levels are as for :class:`~diff_3d.distillers.sds.SDS`.

>>> import torch
>>> from diffcore.priors import GaussianPrior
>>> prior = GaussianPrior(torch.zeros(3 * 4 * 4), shape=(3, 4, 4))
>>> images = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
>>> SJC(draws=4).loss(prior, images, None, step=0, total_steps=10, generator=torch.Generator().manual_seed(0)).loss.backward()
>>> bool((images.grad > 0).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_3d.distillers.base import NoiseLevels, check_options, clip_gradient, coefficients, predict_guided, surrogate_loss, to_prior_space
from diffcore.errors import DiffcoreError
from diffcore.protocols import Distillation, DistillerBase


@dataclass(eq=False)
class SJC(DistillerBase):
    """Score Jacobian Chaining's PAAS gradient (see the module docstring).

    Args:
        draws: ``K``, the noise draws averaged per render (evaluated as one batch of ``K N``).
        guidance_scale, t_min, t_max, t_end, anneal, grad_clip: as for :class:`~diff_3d.distillers.sds.SDS`.
    """

    draws: int = 1
    guidance_scale: float = 1.0
    t_min: float = 0.02
    t_max: float = 0.98
    t_end: float | None = None
    anneal: str = "linear"
    grad_clip: float | None = None

    def __post_init__(self):
        if not isinstance(self.draws, int) or self.draws < 1:
            raise DiffcoreError(f"draws must be a positive integer, got {self.draws!r}")
        self.levels = NoiseLevels(self.t_min, self.t_max, self.t_end, self.anneal)
        check_options(self.guidance_scale, self.grad_clip)

    def loss(self, prior, images, cond, *, step, total_steps, generator, camera=None) -> Distillation:
        z = to_prior_space(prior, images)
        n, k = z.shape[0], self.draws
        t = self.levels.draw(prior.schedule, n, step, total_steps, generator)
        noise = torch.randn((k, *z.shape), generator=generator, dtype=z.dtype).to(z.device)  # (K, N, ...)
        alpha, sigma = coefficients(prior, t, z)
        with torch.no_grad():
            x_t = (alpha * z.detach() + sigma * noise).reshape(k * n, *z.shape[1:])
            tk, ck = t.repeat(k), _repeat(cond, k)
            x0 = predict_guided(prior, x_t, tk, ck, self.guidance_scale).x0.float().reshape(k, *z.shape)
            sigma_ve = sigma / alpha
            g = clip_gradient(-((x0 - z.detach()) / sigma_ve).mean(dim=0), self.grad_clip)
        return Distillation(surrogate_loss(z, g), {"t": t.float(), "sigma": sigma_ve.flatten(), "grad_norm": g.flatten(1).norm(dim=1)})


def _repeat(cond, k: int):
    """``cond`` for ``k`` stacked copies of a batch (tensors repeated along the batch; a text stays)."""
    if cond is None or k == 1:
        return cond
    from dataclasses import fields, replace

    values = {}
    for f in fields(cond):
        value = getattr(cond, f.name)
        if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] > 1:
            values[f.name] = value.repeat(k, *([1] * (value.ndim - 1)))
        elif isinstance(value, list) and len(value) > 1:
            values[f.name] = value * k
    return replace(cond, **values)
