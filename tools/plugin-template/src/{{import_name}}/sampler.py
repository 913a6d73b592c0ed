"""Deterministic DDIM (Song, Meng & Ermon 2021, eq. 12 with eta = 0), an example sampler.

Each step predicts the clean sample and the noise at time t and moves both to the next time s:

    x_s = alpha(s) x0_hat + sigma(s) eps_hat,    (x0_hat, eps_hat) = prior.predict(x_t, t)

which is an Euler step of the probability-flow ODE in the variables ``x / alpha`` and
``sigma / alpha``. With ``clip`` set, ``x0_hat`` is clipped to ``[-clip, clip]`` first, as image
samplers do for data in [-1, 1]. Without it the steps are diffcore's ``ddim`` with ``eta = 0``,
which is what this plugin's tests check, sample for sample.

>>> import diffcore
>>> prior = diffcore.priors.GaussianPrior(mean=[2.0, -1.0])
>>> ts = prior.schedule.timesteps(20)
>>> noise = torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
>>> x = PlainDDIM()(prior, noise, ts)
>>> bool((x.mean(0) - torch.tensor([2.0, -1.0])).abs().max() < 0.2)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffcore.errors import DiffcoreError


@dataclass(frozen=True)
class PlainDDIM:
    """Deterministic DDIM (eta = 0), x0 optionally clipped (an example sampler)

    Args:
        clip: when set, the predicted clean sample is clipped to ``[-clip, clip]`` at each step.
    """

    clip: float | None = None

    def __post_init__(self):
        if self.clip is not None and not self.clip > 0:
            raise DiffcoreError(f"clip must be > 0 or None, got {self.clip!r}")

    @torch.no_grad()
    def __call__(self, prior, x, ts, *, cond=None, generator=None, callback=None):
        for i in range(len(ts) - 1):
            pred = prior.predict(x, ts[i], cond)
            x0 = pred.x0 if self.clip is None else pred.x0.clamp(-self.clip, self.clip)
            s = torch.as_tensor(ts[i + 1], dtype=torch.float64)  # schedule coefficients in float64, cast to x's dtype
            x = prior.schedule.alpha(s).to(x) * x0 + prior.schedule.sigma(s).to(x) * pred.eps
            if callback is not None:
                callback(i, ts[i], x, pred)
        return x
