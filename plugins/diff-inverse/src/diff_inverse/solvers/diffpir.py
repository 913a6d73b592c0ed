"""DiffPIR: denoising diffusion models for plug-and-play image restoration (Zhu, Zhang, Liang, Cao, Wen, Timofte & Van Gool, CVPRW 2023).

Half-quadratic splitting with the diffusion model as the denoiser. At each time t of the grid
(their Algorithm 1, in variance-exploding units ``nu_t = sigma_t / alpha_t``):

1. the prior's clean estimate ``x0_hat = x0_hat(x_t)`` (Tweedie);
2. the data proximal step (their eq. 11), ``x0' = argmin_z ||y - A z||^2 + rho_t ||z - x0_hat||^2``
   with ``rho_t = lam sigma_y^2 / nu_t^2``: in closed form through the SVD,
   ``(V^T x0')_i = (s_i (U^T y)_i + rho_t (V^T x0_hat)_i) / (s_i^2 + rho_t)`` on the measured
   coordinates and ``V^T x0_hat`` elsewhere; without an SVD, ``cg_steps`` conjugate-gradient steps on
   ``(A^T A + rho_t I) z = A^T y + rho_t x0_hat`` from ``x0_hat``. Noiseless y (``rho_t = 0``) puts the
   measured part on y exactly;
3. the effective noise ``eps' = (x_t - alpha_t x0') / sigma_t`` and the step to the next time s,
   ``x_s = alpha_s x0' + sigma_s (sqrt(1 - zeta) eps' + sqrt(zeta) n)`` (their eq. 15).

The defaults ``lam=7``, ``zeta=0.1`` are deepinv's (``deepinv.sampling.DiffPIR``); the paper tunes
them per task (lambda between 3 and 25). One network call per step and no backward pass. Needs a
linear operator (``A_adjoint``); the paper's gradient step for nonlinear operators is not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import Grid, check_pair, initial_state, noise_like, on_device
from diff_inverse.solvers.options import Options, option


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).reshape(a.shape[0], -1).sum(1).reshape(-1, *([1] * (a.ndim - 1)))


def proximal(operator, y: torch.Tensor, x0: torch.Tensor, rho: float, cg_steps: int = 20) -> torch.Tensor:
    """``argmin_z ||y - A z||^2 + rho ||z - x0||^2`` per item: exact through the SVD, else conjugate gradients from ``x0``."""
    if getattr(operator, "has_svd", False):
        s = operator.singulars().to(x0)
        k = s.numel()
        xb = operator.Vt(x0)
        xb[:, :k] = (s * operator.Ut(y) + rho * xb[:, :k]) / (s * s + rho)
        return operator.V(xb).reshape(x0.shape)
    z = x0.clone()
    r = operator.A_adjoint(y - operator.A(z)).reshape(z.shape)  # the residual of the normal equations at z = x0
    p, rr = r.clone(), _dot(r, r)
    for _ in range(cg_steps):
        q = operator.A_adjoint(operator.A(p)).reshape(z.shape) + rho * p
        alpha = rr / _dot(p, q).clamp_min(1e-30)
        z = z + alpha * p
        r = r - alpha * q
        new = _dot(r, r)
        p = r + (new / rr.clamp_min(1e-30)) * p
        rr = new
    return z


@dataclass(frozen=True)
class DiffPIR(Options):
    """DiffPIR with data weight ``lam`` (``rho_t = lam sigma_y^2 / nu_t^2``) and fresh-noise fraction ``zeta``."""

    lam: float = option(7.0, low=0.0, low_open=True)
    zeta: float = option(0.1, low=0.0, high=1.0)
    cg_steps: int = option(20, low=1)  # operators without an SVD
    name = "diffpir"
    needs_svd = False
    needs_linear = True

    def _factors(self, grid, i: int, sigma_y: float):
        """Step i's scalars on the host: alpha_t, sigma_t, alpha_s, the factors of eps' and of fresh noise, and rho_t (a float)."""
        a_t, s_t = grid.host(i)
        a_r, s_r = grid.host(i + 1)
        rho = self.lam * sigma_y**2 * float(a_t / s_t) ** 2
        return a_t, s_t, a_r, s_r * (1 - self.zeta) ** 0.5, s_r * self.zeta**0.5, rho

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        grid = Grid.of(prior.schedule, ts, x)
        rows = [self._factors(grid, i, sigma_y) for i in range(grid.steps)]
        rho = [r[-1] for r in rows]  # Python floats, computed on the host: no sync in the loop
        noisy = [not grid.final(i + 1) and self.zeta > 0 for i in range(grid.steps)]
        a_t, s_t, a_r, k_eps, k_z = on_device(x, *([r[j] for r in rows] for j in range(5)))
        for i in range(grid.steps):
            pred = prior.predict(x, ts[i])
            x0 = proximal(operator, y, pred.x0, rho[i], self.cg_steps)
            eps = (x - a_t[i] * x0) / s_t[i]
            x = a_r[i] * x0 + k_eps[i] * eps
            if noisy[i]:
                x = x + k_z[i] * noise_like(x, generator)
        return x
