"""Euler and Heun steps of Karras et al. (2022), Algorithms 1 and 2, for any schedule.

The probability-flow ODE is integrated in EDM's scaled variables ``xh = x / alpha`` and
``sh = sigma / alpha``, where it reads ``d xh / d sh = eps(x, t)``. Euler is then the same as
DDIM with eta = 0; Heun adds the trapezoidal correction (skipped on the last step to sh = 0).
With ``s_churn > 0`` (Algorithm 2) each step first raises the noise level by a factor
``1 + gamma``, ``gamma = min(s_churn / steps, sqrt(2) - 1)`` inside ``[s_tmin, s_tmax]``, adding
fresh noise scaled by ``s_noise``; the raised time is found by inverting the schedule's log-SNR.
The times and factors of every step (churn included) are computed once before the loop, which
makes no host-device synchronisation.
"""

from __future__ import annotations

import math

import torch

from diffcore.samplers.grid import Grid, host_coefs, noise_like, on_device
from diffcore.schedules import time_at_log_snr


def _churn(schedule, t, sh_t, steps, s_churn, s_tmin, s_tmax, s_noise):
    """Algorithm 2, lines 4-6, on the host: the noisier time t_hat, its scaled sigma, and the factor of
    the fresh noise (None when the step is not churned)."""
    if s_churn <= 0 or not (s_tmin <= float(sh_t) <= s_tmax):
        return t, sh_t, None
    gamma = min(s_churn / steps, math.sqrt(2) - 1)
    sh_hat = sh_t * (1 + gamma)
    t_hat = time_at_log_snr(schedule, -torch.log(sh_hat.double()))
    return t_hat, sh_hat, torch.sqrt(sh_hat**2 - sh_t**2) * s_noise


def _plan(schedule, grid: Grid, second_order, s_churn, s_tmin, s_tmax, s_noise):
    """Every step's times and factors, computed once before the loop (which then makes no host-device synchronisation)."""
    steps = grid.steps
    rows = []
    for i in range(steps):
        a_t, sg_t = grid.host(i)
        a_s, sg_s = grid.host(i + 1)
        a_in = a_t
        t, sh_t, k_noise = _churn(schedule, grid.times[i], sg_t / a_t, steps, s_churn, s_tmin, s_tmax, s_noise)
        a_t, _ = host_coefs(schedule, t, a_t.dtype)  # at the churned time
        sh_s = sg_s / a_s
        rows.append(
            (t, k_noise is not None, second_order and not grid.final(i + 1), a_in, k_noise, a_t, sh_s - sh_t, (sh_s - sh_t) * 0.5, a_s)
        )
    columns = on_device(grid.alpha, *([r[j] for r in rows] for j in range(3, 9)))
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], *columns


def _run(prior, x, ts, cond, generator, callback, second_order, s_churn, s_tmin, s_tmax, s_noise):
    grid = Grid.of(prior.schedule, ts, x)
    times, churned, corrected, a_in, k_noise, a_t, dh, dh_half, a_s = _plan(
        prior.schedule, grid, second_order, s_churn, s_tmin, s_tmax, s_noise
    )
    for i in range(grid.steps):
        t, s = times[i], ts[i + 1]
        if churned[i]:
            x = (x / a_in[i] + k_noise[i] * noise_like(x, generator)) * a_t[i]
        pred = prior.predict(x, t, cond)
        xh = x / a_t[i] + dh[i] * pred.eps
        if corrected[i]:
            pred2 = prior.predict(xh * a_s[i], s, cond)
            xh = x / a_t[i] + dh_half[i] * (pred.eps + pred2.eps)
        x = xh * a_s[i]
        if callback is not None:
            callback(i, t, x, pred)
    return x


@torch.no_grad()
def euler(
    prior,
    x,
    ts,
    *,
    cond=None,
    generator=None,
    callback=None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
):
    """Euler steps of the probability-flow ODE (Karras et al. 2022, Algorithm 1 with first order)."""
    return _run(prior, x, ts, cond, generator, callback, False, s_churn, s_tmin, s_tmax, s_noise)


@torch.no_grad()
def heun(
    prior,
    x,
    ts,
    *,
    cond=None,
    generator=None,
    callback=None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
):
    """Heun's second-order method (Karras et al. 2022, Algorithms 1 and 2); 2 * steps - 1 evaluations."""
    return _run(prior, x, ts, cond, generator, callback, True, s_churn, s_tmin, s_tmax, s_noise)
