"""Ancestral sampling (Ho et al. 2020, Algorithm 2), for any schedule and any time grid.

From t to s < t the step draws from the forward posterior q(x_s | x_t, x0) at the predicted
x0. With ``alpha_ts = alpha_t / alpha_s`` and ``sigma_ts^2 = sigma_t^2 - alpha_ts^2 sigma_s^2``:
mean ``alpha_ts sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_ts^2 / sigma_t^2 x0`` and variance
``sigma_ts^2 sigma_s^2 / sigma_t^2`` (the "fixed small" variance of DDPM).

The loop makes no host-device synchronisation: :class:`DDPMSteps` computes the factors of every
step once, and which steps draw noise, before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffcore.samplers.grid import Grid, coefs, noise_like, on_device


def _factors(a_t, s_t, a_s, s_s, eta: float):
    """The factors of x_t and x0 in the mean, and the noise's standard deviation, of one step (0-d tensors)."""
    a_ts = a_t / a_s
    var_ts = s_t**2 - a_ts**2 * s_s**2
    std = eta * torch.sqrt((var_ts * s_s**2 / s_t**2).clamp_min(0))
    return a_ts * s_s**2 / s_t**2, a_s * var_ts / s_t**2, std


def ddpm_step(x, x0, schedule, t, s, generator=None, eta: float = 1.0):
    """One step from t to s: the mean of q(x_s | x_t, x0) plus ``eta`` times its standard deviation
    times fresh noise (``eta = 1``: the ancestral step; ``eta < 1`` shrinks the noise without DDIM's
    compensating term, as DPS's Algorithm 1 with scaled noise). A loop over a whole grid takes
    :class:`DDPMSteps`, which computes the factors once."""
    k_x, k_x0, std = _factors(*coefs(schedule, t, x), *coefs(schedule, s, x), eta)
    mean = k_x * x + k_x0 * x0
    return mean + std * noise_like(x, generator) if float(std) > 0 else mean


@dataclass(frozen=True)
class DDPMSteps:
    """Every ancestral step of a grid, its factors computed once (the numbers of :func:`ddpm_step`, bit for bit).

    ``noisy[i]`` (host booleans) says whether step ``i`` draws noise (its standard deviation is not 0).
    """

    k_x: torch.Tensor
    k_x0: torch.Tensor
    std: torch.Tensor
    noisy: tuple[bool, ...]

    @classmethod
    def on(cls, grid: Grid, eta: float = 1.0) -> DDPMSteps:
        rows = [_factors(*grid.host(i), *grid.host(i + 1), eta) for i in range(grid.steps)]
        noisy = tuple(bool(r[2] > 0) for r in rows)
        return cls(*on_device(grid.alpha, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]), noisy)

    def __call__(self, i: int, x, x0, generator=None):
        mean = self.k_x[i] * x + self.k_x0[i] * x0
        return mean + self.std[i] * noise_like(x, generator) if self.noisy[i] else mean


@torch.no_grad()
def ddpm(prior, x, ts, *, cond=None, generator=None, callback=None):
    step = DDPMSteps.on(Grid.of(prior.schedule, ts, x))
    for i in range(len(ts) - 1):
        t = ts[i]
        pred = prior.predict(x, t, cond)
        x = step(i, x, pred.x0, generator)
        if callback is not None:
            callback(i, t, x, pred)
    return x
