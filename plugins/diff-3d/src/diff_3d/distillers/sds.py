"""Score Distillation Sampling (Poole et al. 2022, DreamFusion, eq. 3).

For a render ``z`` (in the prior's space), a time ``t`` and noise ``eps``, with
``x_t = alpha(t) z + sigma(t) eps``, the gradient on ``z`` is

    g = w(t) (eps_hat(x_t; y, t) - eps),

where ``eps_hat`` is the prior's (guided) noise prediction, never differentiated: the U-Net
Jacobian is dropped (DreamFusion's "omit the U-Net Jacobian term"). Weightings ``w(t)``:

- ``sds``: ``sigma(t)^2``, DreamFusion's choice (``1 - alpha_bar``), large at high noise;
- ``uniform``: 1;
- ``fantasia3d``: ``alpha(t) sigma(t)^2`` (Chen et al. 2023, Fantasia3D, sec. 3.3), which lowers the
  weight of the noisiest times further.

``g`` may be clamped per entry (``grad_clip``); it enters the loss through
:func:`~diff_3d.distillers.base.surrogate_loss`, ``d loss / d z = g / N``.

>>> import torch
>>> from diffcore.priors import GaussianPrior
>>> prior = GaussianPrior(torch.zeros(3 * 4 * 4), shape=(3, 4, 4))
>>> images = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
>>> out = SDS().loss(prior, images, None, step=0, total_steps=10, generator=torch.Generator().manual_seed(0))
>>> out.loss.backward()
>>> bool((images.grad > 0).all())  # the prior pulls the image towards its mean 0
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_3d.distillers.base import NoiseLevels, check_options, clip_gradient, coefficients, predict_guided, surrogate_loss, to_prior_space
from diffcore.errors import DiffcoreError
from diffcore.protocols import Distillation, DistillerBase

WEIGHTINGS = {
    "sds": lambda alpha, sigma: sigma**2,
    "uniform": lambda alpha, sigma: torch.ones_like(sigma),
    "fantasia3d": lambda alpha, sigma: alpha * sigma**2,
}


def weighting(name: str):
    """The weighting ``w(alpha, sigma)`` called ``name`` (``sds``, ``uniform``, ``fantasia3d``)."""
    if name not in WEIGHTINGS:
        raise DiffcoreError(f"unknown weighting {name!r}; expected one of {', '.join(WEIGHTINGS)}")
    return WEIGHTINGS[name]


@dataclass(eq=False)
class SDS(DistillerBase):
    """Score distillation sampling (see the module docstring).

    Args:
        guidance_scale: classifier-free guidance in diffusers' convention (1: the conditional model;
            DreamFusion's w = 100 is 101); used when the condition has more than a camera.
        weighting: ``sds``, ``uniform`` or ``fantasia3d``.
        t_min, t_max, t_end, anneal: the noise levels (:class:`~diff_3d.distillers.base.NoiseLevels`).
        grad_clip: clamp each entry of ``g`` to ``[-grad_clip, grad_clip]`` (None: no clamp).
    """

    guidance_scale: float = 1.0
    weighting: str = "sds"
    t_min: float = 0.02
    t_max: float = 0.98
    t_end: float | None = None
    anneal: str = "linear"
    grad_clip: float | None = None

    def __post_init__(self):
        self.levels = NoiseLevels(self.t_min, self.t_max, self.t_end, self.anneal)
        self.weight = weighting(self.weighting)
        check_options(self.guidance_scale, self.grad_clip)

    def loss(self, prior, images, cond, *, step, total_steps, generator, camera=None) -> Distillation:
        z = to_prior_space(prior, images)
        t = self.levels.draw(prior.schedule, z.shape[0], step, total_steps, generator)
        eps = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        alpha, sigma = coefficients(prior, t, z)
        with torch.no_grad():
            x_t = alpha * z.detach() + sigma * eps
            eps_hat = predict_guided(prior, x_t, t, cond, self.guidance_scale).eps.float()
            w = self.weight(alpha, sigma)
            g = clip_gradient(w * (eps_hat - eps), self.grad_clip)
        return Distillation(surrogate_loss(z, g), {"t": t.float(), "weight": w.flatten(), "grad_norm": g.flatten(1).norm(dim=1)})
