"""ΠGDM: pseudoinverse-guided diffusion models (Song, Vahdat, Mardani & Kautz, ICLR 2023).

Approximates ``p(x0 | x_t)`` by ``N(x0_hat(x_t), r_t^2 I)`` with ``r_t^2 = sigma_t^2 v / (alpha_t^2 v + sigma_t^2)``
(the posterior variance for Gaussian data of variance ``v = data_var``; the paper's choice is
``v = 1``), so that ``p(y | x_t) ≈ N(A x0_hat, r_t^2 A A^T + sigma_y^2 I)``
and (eq. 7-8 of the paper)

``g = grad_{x_t} log p(y | x_t) ≈ (d x0_hat / d x_t)^T A^T (r_t^2 A A^T + sigma_y^2 I)^{-1} (y - A x0_hat)``,

one vector-Jacobian product through the denoiser. With the SVD the middle factor is diagonal,
``V diag(s_i / (r_t^2 s_i^2 + sigma_y^2)) (U^T y - s * V^T x0_hat)``; without one, noiseless y
uses ``A^+ (y - A x0_hat) / r_t^2``. The guidance corrects the score, ``eps' = eps - sigma_t scale g``
and ``x0' = x0 + sigma_t^2 / alpha_t scale g`` (``diffcore.conversions.add_to_score``: each moves
by itself, so a prior that clips x0 keeps its clipping), and a DDIM step with ``eta`` follows.

``bound_snr`` (default 0.1) caps that move of x0, ``sigma_t^2 / alpha_t scale g``, at the length
of the move for Gaussian data, ``r_t^2 scale v`` (``v`` the vector above: the exact denoiser of
Gaussian data has ``d x0_hat / d x_t = (r_t^2 alpha_t / sigma_t^2) I``), per item, on the steps
where ``alpha_t^2 / sigma_t^2 < bound_snr``; ``bound=True`` caps every step, ``bound_snr=0``
none (the paper's rule). It guards against a trained network's Jacobian error at high noise,
which the move multiplies by ``sigma_t^2 / alpha_t``; an exact denoiser moves x0 by
``Cov[x0 | x_t] v``, which can exceed the cap where the data are correlated or multimodal, so
only the noisiest steps are capped.

``snap=True`` (noisy y with an SVD, the default) moves one grid time onto y's noise level
``median_i sigma_y / s_i`` when no level lies within a factor 1.5 of it (see
``diff_inverse.solvers.ddrm``). The measurements behind both defaults: docs/inverse.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import Grid, check_pair, initial_state, on_device, snap_to_noise_level
from diff_inverse.solvers.options import Options, option
from diffcore import conversions
from diffcore.errors import DiffcoreError
from diffcore.samplers.ddim import DDIMSteps


@dataclass(frozen=True)
class PiGDM(Options):
    """ΠGDM: pseudo-inverse guidance through the denoiser's Jacobian."""

    eta: float = option(1.0, low=0.0, high=1.0)
    scale: float = option(1.0, low=0.0)
    data_var: float = option(1.0, low=0.0, low_open=True)
    bound: bool = False  # True: every step's x0 correction at most the Gaussian-data one, r_t^2 |v| per item
    bound_snr: float = option(0.1, low=0.0)  # and the steps where alpha_t^2 / sigma_t^2 < bound_snr (0: the paper's rule)
    snap: bool = True
    name = "pigdm"
    needs_svd = False
    needs_linear = True
    needs_svd_when_noisy = True  # the noisy-y step is written in the SVD's coordinates

    def _direction(self, operator, y, x0, r2, sigma_y):
        if getattr(operator, "has_svd", False):
            s = operator.singulars().to(x0)
            k = s.numel()
            vt = operator.Vt(x0)
            rho = operator.Ut(y) - s * vt[:, :k]
            c = torch.zeros_like(vt)
            c[:, :k] = s / (r2 * s * s + sigma_y**2) * rho
            return operator.V(c)
        if sigma_y > 0:
            raise DiffcoreError(f"solver 'pigdm' with noisy y needs an operator with an SVD; {type(operator).__name__} has none")
        return operator.A_pinv(y - operator.A(x0)) / r2

    def _factors(self, grid, i):
        """Step i's scalars on the host: alpha_t, sigma_t, r_t^2, the factor of g in x0's move, and whether the cap applies."""
        a_t, s_t = grid.host(i)
        r2 = s_t**2 * self.data_var / (a_t**2 * self.data_var + s_t**2)
        low_snr = self.bound_snr > 0 and float(a_t / s_t) ** 2 < self.bound_snr
        return a_t, s_t, r2, s_t**2 / a_t * self.scale, low_snr

    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        if self.snap and sigma_y > 0 and getattr(operator, "has_svd", False):
            ts = snap_to_noise_level(prior.schedule, ts, float((sigma_y / operator.singulars().to(x)).median()))
        grid = Grid.of(prior.schedule, ts, x)
        step = DDIMSteps.on(grid, self.eta)
        rows = [self._factors(grid, i) for i in range(grid.steps)]
        capped = [self.bound or bool(r[-1]) for r in rows]  # host booleans: no sync in the loop
        a, s_, r2, k_move = on_device(x, *([r[j] for r in rows] for j in range(4)))
        for i in range(grid.steps):
            t, a_t, s_t = ts[i], a[i], s_[i]
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                pred = prior.predict(xg, t)
                with torch.no_grad():
                    v = self._direction(operator, y, pred.x0, r2[i], sigma_y)
                (g,) = torch.autograd.grad((pred.x0 * v).sum(), xg)
            with torch.no_grad():
                if capped[i]:  # x0 moves by sigma_t^2 / alpha_t g; for Gaussian data that is r_t^2 v
                    moved = (k_move[i] * g).reshape(g.shape[0], -1).norm(dim=1)
                    limit = (r2[i] * self.scale * v).reshape(v.shape[0], -1).norm(dim=1)
                    g = g * conversions.expand((limit / moved.clamp_min(1e-30)).clamp(max=1.0), g).to(g)
                # x0 and eps move separately: a prior that clips x0 keeps its clipping (rebuilding x0
                # from the corrected eps dropped it and let some items diverge)
                x0, eps = conversions.add_to_score(pred.x0.detach(), pred.eps.detach(), self.scale * g, a_t, s_t)
                x = step(i, x0, eps, generator=generator)
        return x.detach()
