"""Euler and Heun steps of Karras et al. (2022), Algorithms 1 and 2, for any schedule.

The probability-flow ODE is integrated in EDM's scaled variables ``xh = x / alpha`` and
``sh = sigma / alpha``, where it reads ``d xh / d sh = eps(x, t)``. Euler is then the same as
DDIM with eta = 0; Heun adds the trapezoidal correction (skipped on the last step to sh = 0).
With ``s_churn > 0`` (Algorithm 2) each step first raises the noise level by a factor
``1 + gamma``, ``gamma = min(s_churn / steps, sqrt(2) - 1)`` inside ``[s_tmin, s_tmax]``, adding
fresh noise scaled by ``s_noise``; the raised time is found by inverting the schedule's log-SNR.
"""

from __future__ import annotations

import math

import torch

from diffcore.samplers._common import coefs, noise_like
from diffcore.schedules import time_at_log_snr


def _churn(prior, x, t, a_t, sh_t, steps, generator, s_churn, s_tmin, s_tmax, s_noise):
    """Algorithm 2, lines 4-6: move from t to a noisier t_hat with matching fresh noise."""
    if s_churn <= 0 or not (s_tmin <= float(sh_t) <= s_tmax):
        return x, t, sh_t
    gamma = min(s_churn / steps, math.sqrt(2) - 1)
    sh_hat = sh_t * (1 + gamma)
    t_hat = time_at_log_snr(prior.schedule, -torch.log(sh_hat.double()))
    a_hat, _ = coefs(prior.schedule, t_hat, x)
    xh = x / a_t + torch.sqrt(sh_hat**2 - sh_t**2) * s_noise * noise_like(x, generator)
    return xh * a_hat, t_hat, sh_hat


def _run(prior, x, ts, cond, generator, callback, second_order, s_churn, s_tmin, s_tmax, s_noise):
    steps = len(ts) - 1
    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        a_t, sg_t = coefs(prior.schedule, t, x)
        x, t, sh_t = _churn(prior, x, t, a_t, sg_t / a_t, steps, generator, s_churn, s_tmin, s_tmax, s_noise)
        a_t, _ = coefs(prior.schedule, t, x)
        a_s, sg_s = coefs(prior.schedule, s, x)
        sh_s = sg_s / a_s
        pred = prior.predict(x, t, cond)
        xh = x / a_t + (sh_s - sh_t) * pred.eps
        if second_order and float(sg_s) > 0:
            pred2 = prior.predict(xh * a_s, s, cond)
            xh = x / a_t + (sh_s - sh_t) * 0.5 * (pred.eps + pred2.eps)
        x = xh * a_s
        if callback is not None:
            callback(i, t, x, pred)
    return x


@torch.no_grad()
def euler(prior, x, ts, *, cond=None, generator=None, callback=None, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0):
    """Euler steps of the probability-flow ODE (Karras et al. 2022, Algorithm 1 with first order)."""
    return _run(prior, x, ts, cond, generator, callback, False, s_churn, s_tmin, s_tmax, s_noise)


@torch.no_grad()
def heun(prior, x, ts, *, cond=None, generator=None, callback=None, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0):
    """Heun's second-order method (Karras et al. 2022, Algorithms 1 and 2); 2 * steps - 1 evaluations."""
    return _run(prior, x, ts, cond, generator, callback, True, s_churn, s_tmin, s_tmax, s_noise)
