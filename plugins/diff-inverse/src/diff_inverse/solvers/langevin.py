"""Posterior sampling by annealed Langevin dynamics (Jalal, Arvinte, Daras, Price, Dimakis & Tamir, NeurIPS 2021).

At each time t of the grid the posterior score is the prior's plus an annealed likelihood term
(their eq. 4, with ``z = x_t / alpha_t = x0 + nu_t eps`` and ``nu_t = sigma_t / alpha_t``):

``grad log p_t(x_t | y) ≈ -eps_hat / sigma_t + A^T (y - A z) / (alpha_t (sigma_y^2 + nu_t^2))``.

``corrector_steps`` Langevin steps ``x <- x + delta score + sqrt(2 delta) n`` run at each time,
with the step size of Song et al. (2021) from a signal-to-noise ratio,
``delta = (snr ||n|| / ||score||)^2`` (norms averaged over the batch, as their corrector does),
capped at ``snr sigma_t^2`` so that stiff likelihoods stay stable; a deterministic DDIM step with the same
posterior score then moves to the next time (a predictor-corrector sampler). Needs ``A_adjoint``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import check_pair, coefs, initial_state, noise_like
from diff_inverse.solvers.options import Options, option
from diffcore import conversions


@dataclass(frozen=True)
class Langevin(Options):
    """Annealed Langevin posterior sampling with ``corrector_steps`` steps of ratio ``snr`` per time."""

    snr: float = option(0.16, low=0.0, low_open=True)
    corrector_steps: int = option(1, low=0)
    name = "langevin"
    needs_svd = False
    needs_linear = True

    def _score(self, prior, operator, y, x, t, sigma_y):
        a_t, s_t = coefs(prior.schedule, t, x)
        pred = prior.predict(x, t)
        nu2 = (s_t / a_t) ** 2
        like = operator.A_adjoint(y - operator.A(x / a_t)) / (a_t * (sigma_y**2 + nu2))
        return pred.score(s_t) + like, a_t, s_t

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        for i in range(len(ts) - 1):
            t, r = ts[i], ts[i + 1]
            for _ in range(self.corrector_steps):
                score, _, s_t = self._score(prior, operator, y, x, t, sigma_y)
                n = noise_like(x, generator)
                ratio = n.reshape(n.shape[0], -1).norm(dim=1).mean() / score.reshape(score.shape[0], -1).norm(dim=1).mean().clamp_min(1e-12)
                delta = torch.minimum((self.snr * ratio) ** 2, self.snr * s_t**2)
                x = x + delta * score + torch.sqrt(2 * delta) * n
            score, a_t, s_t = self._score(prior, operator, y, x, t, sigma_y)
            eps = conversions.score_to_eps(score, s_t)
            a_r, s_r = coefs(prior.schedule, r, x)
            x = a_r * conversions.eps_to_x0(x, eps, a_t, s_t) + s_r * eps
        return x
