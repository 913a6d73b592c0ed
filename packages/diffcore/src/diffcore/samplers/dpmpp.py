"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), multistep, data prediction.

With ``lambda = log(alpha / sigma)`` and ``h = lambda_s - lambda_t``, one step from t to s is
``x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D``, where ``D = x0_t`` on the first step
and ``D = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev``, ``r = h_prev / h``, afterwards. The last step
to sigma = 0 is first order (it returns ``x0``), as diffusers' ``lower_order_final`` does.
"""

from __future__ import annotations

import torch

from diffcore.samplers._common import coefs


@torch.no_grad()
def dpmpp_2m(prior, x, ts, *, cond=None, generator=None, callback=None):
    prev_x0, prev_h = None, None
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        pred = prior.predict(x, t, cond)
        a_t, s_t = coefs(prior.schedule, t, x)
        a_s, s_s = coefs(prior.schedule, s, x)
        if float(s_s) == 0:
            x = pred.x0
        else:
            h = (torch.log(a_s) - torch.log(s_s)) - (torch.log(a_t) - torch.log(s_t))
            d = pred.x0
            if prev_x0 is not None:
                r = prev_h / h
                d = (1 + 0.5 / r) * pred.x0 - (0.5 / r) * prev_x0
            x = (s_s / s_t) * x - a_s * torch.expm1(-h) * d
            prev_h = h
        prev_x0 = pred.x0
        if callback is not None:
            callback(i, t, x, pred)
    return x
