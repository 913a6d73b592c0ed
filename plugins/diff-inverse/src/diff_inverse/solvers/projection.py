"""ScoreSDE projection (Song, Shen, Xing & Ermon, ICLR 2022), with RePaint resampling (Lugmayr et al., CVPR 2022).

After each unconditional ancestral step to time s, the measured part of ``x_s`` is pulled toward
a sample of the noised measurement ``y_s = alpha_s y + sigma_s A n`` (eq. 9 of Song et al. 2022):
in the SVD basis, ``xb_s[:k] <- (1 - lam) xb_s[:k] + lam (alpha_s yb + sigma_s m)`` with
``yb = Sigma^+ U^T y`` and ``m ~ N(0, I)``; ``lam = 1`` is hard replacement. The measurement is
taken as noiseless (the method's assumption). RePaint: with ``resample = r > 1``, each step is
redone r times, jumping back from s to t by the forward kernel
``x_t = (alpha_t / alpha_s) x_s + sqrt(sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2) n`` in between,
which lets the unmeasured part harmonise with the replaced one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import check_pair, coefs, initial_state, noise_like
from diff_inverse.solvers.options import Options, option
from diffcore.samplers import ddim_step


@dataclass(frozen=True)
class ScoreSDEProjection(Options):
    """ScoreSDE projection with weight ``lam`` and RePaint ``resample`` count."""

    lam: float = option(1.0, low=0.0, high=1.0)
    resample: int = option(1, low=1)
    name = "projection"
    needs_svd = True
    needs_linear = True
    noiseless_only = True  # takes y as noiseless: solve still runs it on noisy y; solvers_for and the bench do not

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        s = operator.singulars().to(x)
        k = s.numel()
        yb = operator.Ut(y) / s
        for i in range(len(ts) - 1):
            t, r = ts[i], ts[i + 1]
            for j in range(self.resample):
                pred = prior.predict(x, t)
                xs = ddim_step(pred.x0, pred.eps, prior.schedule, t, r, eta=1.0, generator=generator)
                a_r, s_r = coefs(prior.schedule, r, xs)
                xb = operator.Vt(xs)
                target = a_r * yb + s_r * noise_like(yb, generator)
                xb[:, :k] = (1 - self.lam) * xb[:, :k] + self.lam * target
                xs = operator.V(xb)
                if j + 1 < self.resample and float(s_r) > 0:
                    a_t, s_t = coefs(prior.schedule, t, xs)
                    ratio = a_t / a_r
                    x = ratio * xs + torch.sqrt((s_t**2 - ratio**2 * s_r**2).clamp_min(0)) * noise_like(xs, generator)
                else:
                    break
            x = xs
        return x
