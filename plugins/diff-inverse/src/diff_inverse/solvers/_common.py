"""Pieces every solver shares: the time grid with an optional warm start, schedule
coefficients, the model call through a latent decoder, and input checks.

Solvers walk the prior's own grid ``prior.schedule.timesteps(steps)`` and take ``alpha(t)`` and
``sigma(t)`` from the schedule in float64, cast to the working dtype (as diffcore's samplers
do). Every eps/x0/score conversion goes through :mod:`diffcore.conversions`.

The step loops make no host-device synchronisation: each solver computes what it needs of the
schedule on its grid (:class:`~diffcore.samplers.grid.Grid`) and its per-step factors once
before the loop, on the host with the same scalar arithmetic as before (the results are the same
bit for bit), moves them to the state's device in one copy (:func:`~diffcore.samplers.grid.on_device`)
and takes Python decisions (draw noise or not, the last step) from the host values.
"""

from __future__ import annotations

import math

import torch

from diff_inverse.solvers.fit import NEEDS_LINEAR, NEEDS_SVD, fits, refusal
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.samplers.grid import Grid, coefs, noise_like, on_device

__all__ = [
    "Grid",
    "check_pair",
    "coefs",
    "decoded",
    "initial_state",
    "noise_like",
    "on_device",
    "require_linear",
    "require_pixel",
    "require_svd",
    "sigma_y_of",
    "snap_to_noise_level",
]


def sigma_y_of(operator) -> float:
    """The operator's Gaussian noise level, checked: a finite number >= 0."""
    s = getattr(operator, "sigma_y", None)
    if not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
        raise DiffcoreError(f"sigma_y must be a finite number >= 0, got {s!r}")
    return float(s)


def require_svd(name: str, operator) -> None:
    """Refuse ``operator`` for solver ``name`` unless it has an SVD (:func:`~diff_inverse.solvers.fit.refusal`'s message)."""
    if not getattr(operator, "has_svd", False):
        raise DiffcoreError(refusal(name, operator, NEEDS_SVD))


def require_linear(name: str, operator) -> None:
    """Refuse ``operator`` for solver ``name`` unless it is linear."""
    if not getattr(operator, "linear", False):
        raise DiffcoreError(refusal(name, operator, NEEDS_LINEAR))


def require_pixel(name: str, prior) -> None:
    if prior.latent is not None:
        raise DiffcoreError(f"solver {name!r} works in the prior's sample space and cannot use a latent prior; use 'dps' or 'red-diff'")


def decoded(prior, x0: torch.Tensor) -> torch.Tensor:
    """The clean estimate in the operator's space: decoded for latent priors."""
    latent = prior.latent
    return x0 if latent is None else latent.decode(x0)


def check_pair(solver, prior, operator) -> float:
    """The checks of a replacement-style solver: the operator fits what it declares (:func:`~diff_inverse.solvers.fit.fits`
    without the noiseless-only rule: such a solver runs on noisy y, taking it as noiseless), the prior is a pixel prior, and
    sigma_y is valid (returned)."""
    reason = fits(solver, operator, strict=False)
    if reason is not None:
        raise DiffcoreError(refusal(solver.name, operator, reason))
    require_pixel(solver.name, prior)
    return sigma_y_of(operator)


def initial_state(prior, y: torch.Tensor, steps: int, generator, start=None, t_start: float | None = None):
    """The time grid and the state at its first time.

    Without ``start``: the whole grid ``schedule.timesteps(steps)`` and noise of standard
    deviation ``sqrt(alpha^2 + sigma^2)`` at its first time. With ``start`` (an initial estimate
    in the operator's space, encoded for latent priors): CCDF (Chung et al. 2022) keeps the
    grid times ``<= t_start`` and starts from ``alpha x_start + sigma eps`` there.
    """
    ts = prior.schedule.timesteps(steps)
    n = y.shape[0]
    dtype = y.dtype if y.is_floating_point() else torch.float32
    like = torch.empty((n, *prior.sample_shape), dtype=dtype, device=y.device)
    if start is None:
        if t_start is not None:
            raise DiffcoreError("t_start needs start= (an initial estimate to diffuse)")
        return ts, noise_like(like, generator) * prior.schedule.init_std(ts[0]).to(like)
    if t_start is None or not 0 < float(t_start) <= 1:
        raise DiffcoreError(f"a warm start needs t_start in (0, 1], got {t_start!r}")
    start = torch.as_tensor(start).to(device=y.device, dtype=dtype)
    latent = prior.latent
    if latent is not None:
        with torch.no_grad():
            start = latent.encode(start)
    if start.shape[0] == 1 and n > 1:
        start = start.expand(n, *start.shape[1:])
    if tuple(start.shape) != tuple(like.shape):
        raise ShapeError(f"start has shape {tuple(start.shape)}; expected {tuple(like.shape)}")
    ts = ts[ts <= float(t_start) + 1e-12]
    if len(ts) < 2:
        raise DiffcoreError(f"t_start={t_start} leaves no step of the {steps}-step grid; raise t_start or steps")
    a, s = coefs(prior.schedule, ts[0], like)
    return ts, a * start + s * noise_like(like, generator)


def snap_to_noise_level(schedule, ts: torch.Tensor, nu: float, gap: float = 1.5) -> torch.Tensor:
    """The grid ``ts`` with the inner time nearest to noise level ``nu`` moved onto it.

    Noise levels are in variance-exploding units, ``nu_t = sigma_t / alpha_t``, and "nearest" is
    in log ``nu``. The first and last times stay; the grid keeps its length (the same network
    calls) and stays decreasing. ``ts`` comes back unchanged when a level of the grid is already
    within a factor ``gap`` of ``nu``, when ``nu`` lies outside the inner times' range, or when its
    time would not fall strictly between the moved time's neighbours. The solvers that take noisy y through the
    operator's SVD use it to put a network call at the measurement's noise level ``sigma_y / s_i``,
    where y holds exactly the information of a state at that level; the prior's own grid (20
    steps of a 1000-step DDPM jump from nu 0.18 to 0.01) can skip far past it.
    """
    from diffcore.schedules import time_at_log_snr

    if len(ts) < 3 or not (math.isfinite(nu) and nu > 0):
        return ts
    inner = ts[1:-1].double()
    levels = (schedule.sigma(inner) / schedule.alpha(inner)).double()
    live = levels > 0
    if not bool(live.any()) or not float(levels[live].min()) <= nu <= float(levels[live].max()):
        return ts  # outside the grid's range: nothing to move
    dist = (levels.clamp_min(1e-300).log() - math.log(nu)).abs()
    dist[~live] = float("inf")
    j = int(dist.argmin()) + 1
    if float(dist[j - 1]) <= math.log(gap):
        return ts  # the grid already has a level within a factor ``gap`` of nu
    t_nu = float(time_at_log_snr(schedule, torch.tensor(-math.log(nu), dtype=torch.float64)))
    if not float(ts[j + 1]) < t_nu < float(ts[j - 1]):
        return ts
    out = ts.clone()
    out[j] = t_nu
    return out
