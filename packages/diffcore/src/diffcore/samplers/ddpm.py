"""Ancestral sampling (Ho et al. 2020, Algorithm 2), for any schedule and any time grid.

From t to s < t the step draws from the forward posterior q(x_s | x_t, x0) at the predicted
x0. With ``alpha_ts = alpha_t / alpha_s`` and ``sigma_ts^2 = sigma_t^2 - alpha_ts^2 sigma_s^2``:
mean ``alpha_ts sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_ts^2 / sigma_t^2 x0`` and variance
``sigma_ts^2 sigma_s^2 / sigma_t^2`` (the "fixed small" variance of DDPM).
"""

from __future__ import annotations

import torch

from diffcore.samplers._common import coefs, noise_like


def ddpm_step(x, x0, schedule, t, s, generator=None, eta: float = 1.0):
    """One step from t to s: the mean of q(x_s | x_t, x0) plus ``eta`` times its standard deviation
    times fresh noise (``eta = 1``: the ancestral step; ``eta < 1`` shrinks the noise without DDIM's
    compensating term, as DPS's Algorithm 1 with scaled noise)."""
    a_t, s_t = coefs(schedule, t, x)
    a_s, s_s = coefs(schedule, s, x)
    a_ts = a_t / a_s
    var_ts = s_t**2 - a_ts**2 * s_s**2
    mean = (a_ts * s_s**2 / s_t**2) * x + (a_s * var_ts / s_t**2) * x0
    std = eta * torch.sqrt((var_ts * s_s**2 / s_t**2).clamp_min(0))
    return mean + std * noise_like(x, generator) if float(std) > 0 else mean


@torch.no_grad()
def ddpm(prior, x, ts, *, cond=None, generator=None, callback=None):
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        pred = prior.predict(x, t, cond)
        x = ddpm_step(x, pred.x0, prior.schedule, t, s, generator)
        if callback is not None:
            callback(i, t, x, pred)
    return x
