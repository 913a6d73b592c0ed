"""ScoreSDE projection (Song, Shen, Xing & Ermon, ICLR 2022), with RePaint resampling (Lugmayr et al., CVPR 2022).

After each unconditional ancestral step to time s (DDIM with eta = 1, noise ``n``), the measured
part of ``x_s`` is pulled toward a sample of the noised measurement ``y_s = alpha_s y + sigma_s A m``
(eq. 9 of Song et al. 2022): in the SVD basis, ``xb_s[:k] <- (1 - lam) xb_s[:k] + lam (alpha_s yb + sigma_s m)``
with ``yb = Sigma^+ U^T y``; ``lam = 1`` is hard replacement, and then ``m = (V^T n)[:k]``, the
measured part of the step's own noise (which the replacement discards; RePaint's step uses one draw
for both parts too), else fresh noise. The measurement is taken as noiseless (the method's assumption).

RePaint (their Algorithm 1 with jump length 1): with ``resample = r > 1``, every step but the first
is done r times, jumping back from s to t by the forward kernel
``x_t = (alpha_t / alpha_s) x_s + sqrt(sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2) n`` in between,
which lets the unmeasured part harmonise with the replaced one. This is the schedule of diffusers'
``RePaintScheduler`` with ``jump_length=1, jump_n_sample=r``; on a network with one inference step per
training step the draws line up one for one, and the tests check the two give the same images.
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
    noiseless_only = True  # takes y as noiseless: solve warns on noisy y; solvers_for and the bench do not run it there

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        check_pair(self, prior, operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        s = operator.singulars().to(x)
        k = s.numel()
        yb = operator.Ut(y) / s
        for i in range(len(ts) - 1):
            t, r = ts[i], ts[i + 1]
            repeats = 1 if i == 0 else self.resample
            for j in range(repeats):
                pred = prior.predict(x, t)
                n = noise_like(pred.x0, generator)
                xs = ddim_step(pred.x0, pred.eps, prior.schedule, t, r, eta=1.0, noise=n)
                a_r, s_r = coefs(prior.schedule, r, xs)
                xb = operator.Vt(xs)
                m = operator.Vt(n)[:, :k] if self.lam == 1 else noise_like(yb, generator)
                xb[:, :k] = (1 - self.lam) * xb[:, :k] + self.lam * (a_r * yb + s_r * m)
                xs = operator.V(xb)
                if j + 1 < repeats:
                    a_t, s_t = coefs(prior.schedule, t, xs)
                    ratio = a_t / a_r
                    x = ratio * xs + torch.sqrt((s_t**2 - ratio**2 * s_r**2).clamp_min(0)) * noise_like(xs, generator)
            x = xs
        return x
