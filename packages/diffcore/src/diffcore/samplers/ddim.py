"""DDIM (Song, Meng & Ermon 2021, eq. 12), with the eta of its generalised process.

``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z`` where ``c = eta * sqrt(var)`` and
``var = sigma_ts^2 sigma_s^2 / sigma_t^2`` is the DDPM posterior variance (eta = 1 gives
DDPM-like stochastic steps, eta = 0 the deterministic probability-flow discretisation).
Noise is drawn only when eta > 0, as diffusers' DDIMScheduler does.
"""

from __future__ import annotations

import torch

from diffcore.samplers._common import coefs, noise_like


def ddim_step(x0, eps, schedule, t, s, *, eta: float = 0.0, generator=None, noise=None):
    """One DDIM step from time t to s < t, given the prediction ``(x0, eps)`` at t (eq. 12).

    The step of :func:`ddim`, for algorithms that change ``x0`` or ``eps`` before stepping
    (posterior solvers): noise is drawn from ``generator`` whenever ``eta > 0``, as in the sampler,
    unless ``noise`` (standard normal, shaped like ``x0``) is given, for an algorithm that uses the
    same draw elsewhere too.
    """
    a_t, s_t = coefs(schedule, t, x0)
    a_s, s_s = coefs(schedule, s, x0)
    if eta > 0:
        var = (s_t**2 - (a_t / a_s) ** 2 * s_s**2) * s_s**2 / s_t**2
        c = eta * torch.sqrt(var.clamp_min(0))
        z = noise_like(x0, generator) if noise is None else noise
        return a_s * x0 + torch.sqrt((s_s**2 - c**2).clamp_min(0)) * eps + c * z
    return a_s * x0 + s_s * eps


@torch.no_grad()
def ddim(prior, x, ts, *, cond=None, generator=None, callback=None, eta: float = 0.0):
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        pred = prior.predict(x, t, cond)
        x = ddim_step(pred.x0, pred.eps, prior.schedule, t, s, eta=eta, generator=generator)
        if callback is not None:
            callback(i, t, x, pred)
    return x
