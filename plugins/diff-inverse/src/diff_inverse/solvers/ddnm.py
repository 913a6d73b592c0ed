"""DDNM and DDNM+: zero-shot restoration by null-space decomposition (Wang, Yu & Zhang, ICLR 2023).

DDNM (noiseless y, eq. 13): replace the range-space part of the clean estimate by the
measurement, ``x0' = A^+ y + (I - A^+ A) x0_hat = x0_hat - A^+ (A x0_hat - y)``, then take a
DDIM step from ``(x0', eps_hat)`` with ``c = eta sigma_s`` of fresh noise (the authors' sampler):
``x_s = alpha_s x0' + sqrt(1 - eta^2) sigma_s eps_hat + eta sigma_s n``. Needs only ``A_pinv``.

DDNM+ (noisy y, eq. 17-19) scales the correction per singular direction and shrinks the fresh
noise to make room for the measurement's: with ``c = eta sigma_s`` and ``e_i = alpha_s sigma_y / s_i``,
``lambda_i = 1, gamma_i = c^2 - e_i^2`` when ``c >= e_i``, else ``lambda_i = c / e_i, gamma_i = 0``;
``x0' = x0_hat - V diag(lambda) (Sigma^+ U^T (A x0_hat - y))`` and the fresh noise is
``V diag(sqrt(gamma)) n`` (``gamma = c^2`` in the null space). Needs the SVD.

``snap=True`` (DDNM+ on noisy y, the default) moves one grid time onto the level where ``c = e_i``,
``nu = median_i sigma_y / (eta s_i)``, when no level lies within a factor 1.5 of it (see
``diff_inverse.solvers.ddrm``; measurements in docs/inverse.md). Plain DDNM takes y as noiseless:
on noisy y it puts ``A^+ y``, noise included (amplified by ``1 / s_i``), into x0 at every step, so
:func:`diff_inverse.solve` warns and names DDNM+.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import Grid, check_pair, initial_state, noise_like, on_device, snap_to_noise_level
from diff_inverse.solvers.options import Options, option


def _step_factors(grid, i: int, eta: float):
    """Step i's scalars on the host: alpha_s, the factor of eps_hat, and the fresh noise's level c = eta sigma_s."""
    a_r, s_r = grid.host(i + 1)
    return a_r, (1 - eta**2) ** 0.5 * s_r, eta * s_r


@dataclass(frozen=True)
class DDNM(Options):
    """DDNM: range-null space replacement with ``A_pinv`` (exact for noiseless y)."""

    eta: float = option(0.85, low=0.0, high=1.0)
    name = "ddnm"
    needs_svd = False
    needs_linear = True
    noiseless_only = True  # takes y as noiseless: solve runs it on noisy y with a warning; solvers_for and the bench do not
    noisy_counterpart = "ddnm+"

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        grid = Grid.of(prior.schedule, ts, x)
        rows = [_step_factors(grid, i, self.eta) for i in range(grid.steps)]
        noisy = [bool(r[2] > 0) for r in rows]  # host booleans: no sync in the loop
        a_r, k_eps, c = on_device(x, *zip(*rows))
        for i in range(grid.steps):
            pred = prior.predict(x, ts[i])
            x0 = pred.x0 - operator.A_pinv(operator.A(pred.x0) - y)
            x = a_r[i] * x0 + k_eps[i] * pred.eps
            if noisy[i]:
                x = x + c[i] * noise_like(x, generator)
        return x


@dataclass(frozen=True)
class DDNMPlus(Options):
    """DDNM+: DDNM with per-direction scaling of the correction and noise for noisy y."""

    eta: float = option(0.85, low=0.0, high=1.0)
    snap: bool = True
    name = "ddnm+"
    needs_svd = True
    needs_linear = True

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        s = operator.singulars().to(x)
        k = s.numel()
        yb = operator.Ut(y) / s
        if self.snap and sigma_y > 0 and self.eta > 0:
            ts = snap_to_noise_level(prior.schedule, ts, float((sigma_y / (self.eta * s)).median()))
        grid = Grid.of(prior.schedule, ts, x)
        rows = [_step_factors(grid, i, self.eta) for i in range(grid.steps)]
        c_host = [float(r[2]) for r in rows]  # the null space's noise level, for full_like without a sync
        a_rs, k_eps, cs = on_device(x, *zip(*rows))
        for i in range(grid.steps):
            pred = prior.predict(x, ts[i])
            a_r, c = a_rs[i], cs[i]
            e = a_r * sigma_y / s
            full = c >= e * (1 - 1e-6)  # a grid time snapped onto the crossing counts as full
            lam = torch.where(full, torch.ones_like(e), c / e.clamp_min(1e-30))
            gamma = torch.where(full, (c**2 - e**2).clamp_min(0), torch.zeros_like(e))
            xb0 = operator.Vt(pred.x0)
            xb0[:, :k] = xb0[:, :k] - lam * (xb0[:, :k] - yb)
            n = noise_like(xb0, generator)
            std = torch.full_like(xb0[0], c_host[i])
            std[:k] = gamma.sqrt()
            x = a_r * operator.V(xb0) + k_eps[i] * pred.eps + operator.V(std * n)
        return x
