"""ILVR: iterative latent variable refinement (Choi, Kim, Jeong, Gwon & Yoon, ICCV 2021).

After each unconditional ancestral step, the low-frequency content ``phi(x) = A^+ A x`` of the
sample is replaced by that of the reference diffused to the same time (Algorithm 1):

``x_s <- x_s - A^+ A x_s + A^+ (alpha_s y + sigma_s A n)``,  ``n ~ N(0, I)``,

since ``A^+ A (alpha_s x_ref + sigma_s n) = A^+ (alpha_s y + sigma_s A n)`` for ``y = A x_ref``.
Conditioning stops below ``t_stop`` (the paper's conditioning range). Needs ``A`` and ``A_pinv``,
and takes y as noiseless (the reference's low frequencies are copied as they are).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import Grid, check_pair, initial_state, noise_like
from diff_inverse.solvers.options import Options, option
from diffcore.samplers.ddim import DDIMSteps


@dataclass(frozen=True)
class ILVR(Options):
    """ILVR with conditioning down to time ``t_stop``."""

    t_stop: float = option(0.0, low=0.0, high=1.0)
    name = "ilvr"
    needs_svd = False
    needs_linear = True
    noiseless_only = True  # copies y's low frequencies as they are: solve warns on noisy y

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        grid = Grid.of(prior.schedule, ts, x)  # the factors of every step, once: no host sync in the loop
        step = DDIMSteps.on(grid, 1.0)
        conditioned = [float(r) >= self.t_stop for r in ts[1:]]
        for i in range(len(ts) - 1):
            pred = prior.predict(x, ts[i])
            x = step(i, pred.x0, pred.eps, generator=generator)
            if conditioned[i]:
                ref = grid.alpha[i + 1] * y + grid.sigma[i + 1] * operator.A(noise_like(x, generator))
                x = x - operator.A_pinv(operator.A(x)) + operator.A_pinv(ref)
        return x
