"""DDRM: Denoising Diffusion Restoration Models (Kawar, Elad, Ermon & Song, NeurIPS 2022).

Works in the operator's spectral domain ``A = U diag(s) V^T`` and in variance-exploding
units: ``z_t = x_t / alpha_t = x0 + nu_t eps`` with ``nu_t = sigma_t / alpha_t``, so any
schedule fits. With ``zb = V^T z``, ``xb0 = V^T x0_hat(x_t)``, ``yb_i = (U^T y)_i / s_i`` and
``eta_i = sigma_y / s_i``, one step from t to s < t draws each coordinate (eq. 7-8 of the paper):

- null space (no singular value): ``xb0 + sqrt(1 - etaC^2) nu_s (zb - xb0) / nu_t + etaC nu_s n``
  (``etaC`` defaults to ``etaA``; the official code has it as a separate option);
- measured and ``nu_s < eta_i`` (the state is less noisy than y):
  ``xb0 + sqrt(1 - etaA^2) nu_s (yb - xb0) / eta_i + etaA nu_s n``;
- measured and ``nu_s >= eta_i``: ``(1 - etaB) xb0 + etaB yb + sqrt(nu_s^2 - etaB^2 eta_i^2) n``;

then ``x_s = alpha_s V zb_s``. Noiseless y (sigma_y = 0) always takes the last case, which with
etaB = 1 puts the measured coordinates on ``yb`` exactly at the end.

``snap=True`` (the default, noisy y) moves one time of the grid onto the measurement's noise level
``nu = median_i eta_i`` when the grid has no level within a factor 1.5 of it
(:func:`~diff_inverse.solvers._common.snap_to_noise_level`; same number of network calls). There,
with etaB = 1, the last case puts the state on ``yb`` exactly, a draw of ``x0 + nu eps`` given y.
The prior's own grid can skip far past it (20 steps of a 1000-step DDPM go from nu 0.18 to 0.01);
the measurements behind the default are in docs/inverse.md. ``snap=False`` keeps the grid as
given (the Gaussian-mixture benchmark does, as the authors').
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import Grid, check_pair, initial_state, noise_like, on_device, snap_to_noise_level
from diff_inverse.solvers.options import Options, option


@dataclass(frozen=True)
class DDRM(Options):
    """DDRM with ``etaA`` (less-noisy coordinates), ``etaB`` (noisier ones), ``etaC`` (null space; None: ``etaA``)
    and ``snap`` (a network call at y's noise level)."""

    etaA: float = option(0.85, low=0.0, high=1.0)
    etaB: float = option(1.0, low=0.0, high=1.0)
    etaC: float | None = option(None, low=0.0, high=1.0)
    snap: bool = True
    name = "ddrm"
    needs_svd = True
    needs_linear = True

    def _factors(self, grid, i, eta_c):
        """Step i's scalars on the host: alpha_t, alpha_r, nu_t, nu_r and the factors of the null-space and measured updates."""
        a_t, s_t = grid.host(i)
        a_r, s_r = grid.host(i + 1)
        nu_t, nu_r = s_t / a_t, s_r / a_r
        return a_t, a_r, nu_t, nu_r, (1 - eta_c**2) ** 0.5 * nu_r, eta_c * nu_r, (1 - self.etaA**2) ** 0.5 * nu_r, self.etaA * nu_r

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        s = operator.singulars().to(x)
        k = s.numel()
        yb = operator.Ut(y) / s
        eta_i = sigma_y / s
        eta_c = self.etaA if self.etaC is None else self.etaC
        if self.snap and sigma_y > 0:
            ts = snap_to_noise_level(prior.schedule, ts, float(eta_i.median()))
        grid = Grid.of(prior.schedule, ts, x)
        a_t, a_r, nu_t, nu_r, k_z, k_n, keep, k_mn = on_device(x, *zip(*(self._factors(grid, i, eta_c) for i in range(grid.steps))))
        for i in range(grid.steps):
            pred = prior.predict(x, ts[i])
            zb = operator.Vt(x / a_t[i])
            xb0 = operator.Vt(pred.x0)
            n = noise_like(zb, generator)
            out = xb0 + k_z[i] * (zb - xb0) / nu_t[i] + k_n[i] * n
            m0, mz, mn = xb0[:, :k], yb, n[:, :k]
            noisier = nu_r[i] >= eta_i * (1 - 1e-6)  # (k,); a grid time snapped onto eta_i counts as noisier
            less = m0 + keep[i] * (mz - m0) / torch.where(noisier, torch.ones_like(eta_i), eta_i) + k_mn[i] * mn
            more = (1 - self.etaB) * m0 + self.etaB * mz + torch.sqrt((nu_r[i] ** 2 - (self.etaB * eta_i) ** 2).clamp_min(0)) * mn
            out[:, :k] = torch.where(noisier, more, less)
            x = a_r[i] * operator.V(out)
        return x
