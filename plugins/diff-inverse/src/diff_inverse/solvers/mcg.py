"""MCG: manifold constrained gradients (Chung, Sim, Ryu & Ye, NeurIPS 2022).

An ancestral step, a gradient step that keeps the sample on the data manifold by
differentiating the measurement error of Tweedie's estimate through the denoiser (eq. 14),
then the ScoreSDE/ILVR projection onto the noised measurement (eq. 15):

``x_s' = ddpm(x_t) - alpha / ||y - A x0_hat|| grad_{x_t} ||y - A x0_hat||^2``,
``x_s = x_s' - A^+ A x_s' + A^+ (alpha_s y + sigma_s A n)``.

The step size is normalised by the residual as in DPS (the paper's ``alpha`` with ``W = I``).
For noisy y the authors drop the projection, which leaves DPS: ``project=None`` (the default)
projects on noiseless y only; ``True`` or ``False`` forces it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import Grid, check_pair, initial_state, noise_like
from diff_inverse.solvers.options import Options, option
from diffcore.samplers.ddim import DDIMSteps


@dataclass(frozen=True)
class MCG(Options):
    """MCG with gradient step ``alpha`` and optional projection."""

    alpha: float = option(0.5, low=0.0)
    project: bool | None = None  # None: on noiseless y only (the authors drop it for noisy y)
    name = "mcg"
    needs_svd = False
    needs_linear = True

    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = check_pair(self, prior, operator)
        project = self.project if self.project is not None else sigma_y == 0
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        grid = Grid.of(prior.schedule, ts, x)
        ancestral = DDIMSteps.on(grid, 1.0)
        for i in range(len(ts) - 1):
            t = ts[i]
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                pred = prior.predict(xg, t)
                resid = y - operator.A(pred.x0)
                sq = (resid * resid).reshape(resid.shape[0], -1).sum(1)
                (grad,) = torch.autograd.grad(sq.sum(), xg)
            with torch.no_grad():
                step = (self.alpha / sq.sqrt().clamp_min(1e-12)).reshape(-1, *([1] * (x.ndim - 1))).to(x)
                x = ancestral(i, pred.x0.detach(), pred.eps.detach(), generator=generator) - step * grad
                if project:
                    ref = grid.alpha[i + 1] * y + grid.sigma[i + 1] * operator.A(noise_like(x, generator))
                    x = x - operator.A_pinv(operator.A(x)) + operator.A_pinv(ref)
        return x.detach()
