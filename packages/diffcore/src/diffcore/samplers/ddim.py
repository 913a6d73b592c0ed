"""DDIM (Song, Meng & Ermon 2021, eq. 12), with the eta of its generalised process.

``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z`` where ``c = eta * sqrt(var)`` and
``var = sigma_ts^2 sigma_s^2 / sigma_t^2`` is the DDPM posterior variance (eta = 1 gives
DDPM-like stochastic steps, eta = 0 the deterministic probability-flow discretisation).
Noise is drawn only when eta > 0, as diffusers' DDIMScheduler does.

The loop makes no host-device synchronisation: :class:`DDIMSteps` computes the three factors of
every step of the grid once, before it (see :mod:`diffcore.samplers.grid`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffcore.samplers.grid import Grid, coefs, noise_like, on_device


def _factors(a_t, s_t, a_s, s_s, eta: float):
    """The factors of x0, eps and fresh noise of one step (0-d tensors; the noise factor None when eta = 0)."""
    if eta > 0:
        var = (s_t**2 - (a_t / a_s) ** 2 * s_s**2) * s_s**2 / s_t**2
        c = eta * torch.sqrt(var.clamp_min(0))
        return a_s, torch.sqrt((s_s**2 - c**2).clamp_min(0)), c
    return a_s, s_s, None


def ddim_step(x0, eps, schedule, t, s, *, eta: float = 0.0, generator=None, noise=None):
    """One DDIM step from time t to s < t, given the prediction ``(x0, eps)`` at t (eq. 12).

    The step of :func:`ddim`, for algorithms that change ``x0`` or ``eps`` before stepping
    (posterior solvers): noise is drawn from ``generator`` whenever ``eta > 0``, as in the sampler,
    unless ``noise`` (standard normal, shaped like ``x0``) is given, for an algorithm that uses the
    same draw elsewhere too. A loop over a whole grid takes :class:`DDIMSteps` instead, which
    computes the factors once.
    """
    a_t, s_t = coefs(schedule, t, x0)
    a_s, s_s = coefs(schedule, s, x0)
    k_x0, k_eps, k_z = _factors(a_t, s_t, a_s, s_s, eta)
    if k_z is not None:
        z = noise_like(x0, generator) if noise is None else noise
        return k_x0 * x0 + k_eps * eps + k_z * z
    return k_x0 * x0 + k_eps * eps


@dataclass(frozen=True)
class DDIMSteps:
    """Every DDIM step of a grid, its factors computed once: ``x_s = k_x0[i] x0 + k_eps[i] eps + k_z[i] z``.

    The same numbers as :func:`ddim_step` at each step, bit for bit, on the state's device.

    >>> from diffcore.schedules import make_schedule
    >>> s = make_schedule("linear")
    >>> x0, eps = torch.randn(3, 2), torch.randn(3, 2)
    >>> steps = DDIMSteps.on(Grid.of(s, s.timesteps(5), x0))
    >>> torch.equal(steps(1, x0, eps), ddim_step(x0, eps, s, s.timesteps(5)[1], s.timesteps(5)[2]))
    True
    """

    k_x0: torch.Tensor
    k_eps: torch.Tensor
    k_z: torch.Tensor | None  # None: eta = 0, no noise

    @classmethod
    def on(cls, grid: Grid, eta: float = 0.0) -> DDIMSteps:
        rows = [_factors(*grid.host(i), *grid.host(i + 1), eta) for i in range(grid.steps)]
        k_x0, k_eps, k_z = on_device(grid.alpha, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        return cls(k_x0, k_eps, k_z if eta > 0 else None)

    def __call__(self, i: int, x0, eps, *, generator=None, noise=None):
        """The step from the grid's time ``i`` to ``i + 1``; noise from ``generator`` (or ``noise``) when eta > 0."""
        if self.k_z is not None:
            z = noise_like(x0, generator) if noise is None else noise
            return self.k_x0[i] * x0 + self.k_eps[i] * eps + self.k_z[i] * z
        return self.k_x0[i] * x0 + self.k_eps[i] * eps


@torch.no_grad()
def ddim(prior, x, ts, *, cond=None, generator=None, callback=None, eta: float = 0.0):
    step = DDIMSteps.on(Grid.of(prior.schedule, ts, x), eta)
    for i in range(len(ts) - 1):
        t = ts[i]
        pred = prior.predict(x, t, cond)
        x = step(i, pred.x0, pred.eps, generator=generator)
        if callback is not None:
            callback(i, t, x, pred)
    return x
