"""DDIM inversion of video frames with an image prior (Song et al. 2021, eq. 13; Dhariwal & Nichol 2021, App. F).

DDIM's deterministic step from ``t`` to ``s < t`` is invertible in the limit of small steps:
running it from ``s`` up to ``t`` with the noise prediction at the lower time,

    x_t = alpha_t / alpha_s * x_s + (sigma_t - alpha_t sigma_s / alpha_s) eps(x_s, s),

maps a clean image to a latent that DDIM sampling brings back to it, up to the error of using
``eps(x_s, s)`` for ``eps(x_t, t)``. ``refine`` fixed-point iterations remove most of that error
(Pan et al. 2023, "Effective real image editing with accelerated iterative diffusion
inversion"): ``x_t <- alpha_t / alpha_s * x_s + (...) eps(x_t, t)``, whose fixed point is exactly
the ``x_t`` that the DDIM step from ``t`` sends to ``x_s``. Both directions use the
``eps``-parameterisation (``x0 = (x_t - sigma_t eps) / alpha_t``, unclipped), so that sampling with
:func:`ddim_denoise` inverts :func:`ddim_invert` whatever clipping the prior applies elsewhere.

Frames are independent items of the batch ``(B, *sample_shape)``; an attention processor
installed around the call (cross-frame attention) ties them together, and the caller runs a long
video chunk by chunk (:mod:`diff_video.editing.engine`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffcore.errors import DiffcoreError
from diffcore.samplers.ddim import ddim_step


def _coefs(schedule, t, like):
    t = torch.as_tensor(t, dtype=torch.float64)
    return schedule.alpha(t).to(like), schedule.sigma(t).to(like)


def clean_estimate(schedule, x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
    """``(x_t - sigma_t eps) / alpha_t``: the x0 that ``eps`` implies (no clipping)."""
    a, s = _coefs(schedule, t, x_t)
    return (x_t - s * eps) / a


def edit_times(schedule, steps: int, strength: float) -> torch.Tensor:
    """The descending DDIM times of an edit: the last ``round(strength * steps)`` intervals of the ``steps``-step grid."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise DiffcoreError(f"steps must be a whole number >= 1, got {steps!r}")
    if not 0.0 < float(strength) <= 1.0:
        raise DiffcoreError(f"strength must be in (0, 1], got {strength!r}")
    ts = schedule.timesteps(steps)
    used = max(1, round(float(strength) * steps))
    return ts[len(ts) - 1 - used :]


@torch.no_grad()
def ddim_invert(
    prior,
    x: torch.Tensor,
    times: torch.Tensor,
    cond=None,
    *,
    refine: int = 0,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run DDIM from the last (lowest) of the descending ``times`` up to the first; returns ``x`` at ``times[0]``.

    ``x`` is the batch at ``times[-1]`` (frames, or their latents). ``refine`` fixed-point
    iterations per step (see the module docstring); the network is called ``1 + refine`` times
    per step, the last call at the step's upper time. ``callback(i, x)`` sees ``x`` after step ``i``.
    """
    if not isinstance(refine, int) or refine < 0:
        raise DiffcoreError(f"refine must be a whole number >= 0, got {refine!r}")
    schedule = prior.schedule
    up = torch.flip(torch.as_tensor(times, dtype=torch.float64), [0])
    for i in range(len(up) - 1):
        s, t = up[i], up[i + 1]
        eps = prior.predict(x, s, cond).eps
        nxt = ddim_step(clean_estimate(schedule, x, eps, s), eps, schedule, s, t)
        for _ in range(refine):
            eps_t = prior.predict(nxt, t, cond).eps
            # x_t such that the DDIM step t -> s with eps(x_t, t) lands on x_s
            a_t, s_t = _coefs(schedule, t, x)
            a_s, s_s = _coefs(schedule, s, x)
            nxt = a_t / a_s * (x - s_s * eps_t) + s_t * eps_t
        x = nxt
        if callback is not None:
            callback(i, x)
    return x


def ddim_denoise(
    prior,
    x: torch.Tensor,
    times: torch.Tensor,
    cond=None,
    *,
    correct: Callable[[int, torch.Tensor, torch.Tensor, object], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Deterministic DDIM from ``times[0]`` down to ``times[-1]`` with unclipped ``x0`` (the inverse of :func:`ddim_invert`).

    ``correct(i, x_t, t, cond) -> x0`` replaces the network call of step ``i`` (an editor's guided
    clean estimate, e.g. Pix2Video's); it returns ``x0`` and the step uses ``eps = (x_t - alpha x0) / sigma``.
    """
    schedule = prior.schedule
    times = torch.as_tensor(times, dtype=torch.float64)
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        a_t, s_t = _coefs(schedule, t, x)
        if correct is None:
            with torch.no_grad():
                eps = prior.predict(x, t, cond).eps
            x0 = clean_estimate(schedule, x, eps, t)
        else:
            x0 = correct(i, x, t, cond).detach()
            eps = (x - a_t * x0) / s_t
        x = ddim_step(x0, eps, schedule, t, s).detach()
    return x


__all__ = ["clean_estimate", "ddim_denoise", "ddim_invert", "edit_times"]
