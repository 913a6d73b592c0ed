"""SNIPS: solving noisy inverse problems stochastically (Kawar, Vaksman & Elad, NeurIPS 2021).

Annealed Langevin dynamics in the operator's spectral domain, in variance-exploding units
``z = x_t / alpha_t = x0 + nu_t eps`` (``nu_t = sigma_t / alpha_t``). With ``zb = V^T z``,
``yb = Sigma^+ U^T y``, ``eta_j = sigma_y / s_j`` and the prior score ``sb = V^T (-eps_hat / nu_t)``,
the posterior score of each coordinate is (their eq. 10)

- null space: ``sb_j``;
- ``nu_t < eta_j`` (y noisier than the state): ``sb_j + (yb_j - zb_j) / (eta_j^2 - nu_t^2)``;
- ``nu_t > eta_j``: ``(yb_j - zb_j) / (nu_t^2 - eta_j^2)`` (the measurement dominates);

and each of ``inner`` Langevin steps per grid time moves ``zb += a L g + sqrt(2 a L) n`` with
``a = c nu_t^2`` and the preconditioner ``L_j`` = 1 in the null space, ``1 - nu_t^2 / eta_j^2``
and ``1 - eta_j^2 / nu_t^2`` in the two measured cases (their Algorithm 1). The result is
Tweedie's estimate at the last (smallest) noise level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import check_pair, coefs, initial_state, noise_like
from diff_inverse.solvers.options import Options, option


@dataclass(frozen=True)
class SNIPS(Options):
    """SNIPS with step constant ``c`` and ``inner`` Langevin steps per noise level."""

    c: float = option(0.1, low=0.0, low_open=True)
    inner: int = option(3, low=1)
    name = "snips"
    needs_svd = True
    needs_linear = True

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        s = operator.singulars().to(x)
        k = s.numel()
        yb = operator.Ut(y) / s
        eta2 = (sigma_y / s) ** 2
        a_t, _ = coefs(prior.schedule, ts[0], x)
        zb = operator.Vt(x / a_t)
        pred = None
        for t in ts[:-1]:
            a_t, s_t = coefs(prior.schedule, t, x)
            nu2 = (s_t / a_t) ** 2
            step = self.c * nu2
            noisier = nu2 < eta2  # y is noisier than the state at this level
            precond = torch.where(noisier, 1 - nu2 / eta2.clamp_min(1e-30), 1 - eta2 / nu2)
            for _ in range(self.inner):
                pred = prior.predict(a_t * operator.V(zb), t)
                g = operator.Vt(-pred.eps) / (s_t / a_t)
                lik = (yb - zb[:, :k]) / (eta2 - nu2).abs().clamp_min(1e-30)
                g[:, :k] = torch.where(noisier, g[:, :k] + lik, lik)
                lam = torch.ones_like(zb[0])
                lam[:k] = precond
                zb = zb + step * lam * g + torch.sqrt(2 * step * lam) * noise_like(zb, generator)
        a_t, _ = coefs(prior.schedule, ts[-2], x)
        return prior.predict(a_t * operator.V(zb), ts[-2]).x0
