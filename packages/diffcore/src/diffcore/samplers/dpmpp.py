"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), multistep, data prediction.

With ``lambda = log(alpha / sigma)`` and ``h = lambda_s - lambda_t``, one step from t to s is
``x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D``, where ``D = x0_t`` on the first step
and ``D = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev``, ``r = h_prev / h``, afterwards. The last step
to sigma = 0 is first order (it returns ``x0``), and so is the step into the last non-zero time
before it (in the spirit of diffusers' ``lower_order_final``): a DDPM grid ends with a long jump in
lambda (t = 0.201 -> 0.001 at 5 steps, 0.051 -> 0.001 at 20) where the second-order
extrapolation with a small step ratio r overshoots (measured on the exact mixture: sliced
Wasserstein 0.085 instead of 0.030 at 20 steps in 2-D).
"""

from __future__ import annotations

import torch

from diffcore.samplers._common import coefs


@torch.no_grad()
def dpmpp_2m(prior, x, ts, *, cond=None, generator=None, callback=None):
    prev_x0, prev_h = None, None
    steps = len(ts) - 1
    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        pred = prior.predict(x, t, cond)
        a_t, s_t = coefs(prior.schedule, t, x)
        a_s, s_s = coefs(prior.schedule, s, x)
        if float(s_s) == 0:
            x = pred.x0
        else:
            h = (torch.log(a_s) - torch.log(s_s)) - (torch.log(a_t) - torch.log(s_t))
            d = pred.x0
            before_final = i + 2 == steps and float(coefs(prior.schedule, ts[-1], x)[1]) == 0
            if prev_x0 is not None and not before_final:
                r = prev_h / h
                d = (1 + 0.5 / r) * pred.x0 - (0.5 / r) * prev_x0
            x = (s_s / s_t) * x - a_s * torch.expm1(-h) * d
            prev_h = h
        prev_x0 = pred.x0
        if callback is not None:
            callback(i, t, x, pred)
    return x
