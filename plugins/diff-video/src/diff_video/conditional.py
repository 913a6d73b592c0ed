"""Conditional sampling from an unconditional video prior: DDIM with replacement and reconstruction guidance.

Given a measurement ``y = A(x)`` of a linear operator (some frames for extension and
interpolation, every frame downsampled for super-resolution), Video Diffusion Models (Ho et al.
2022, sec. 3.1) sample ``x`` with the unconditional model in two ways, both here:

- replacement (:class:`~diff_video.replacement.Replacement`; the imputation of Song et al. 2021,
  appendix I): after each step the measured part of the state is replaced by a draw of the forward
  process at the new time, ``A x_s := alpha_s y + sigma_s A eps`` with fresh ``eps``, i.e.
  ``x_s <- x_s + A^+ (alpha_s y + sigma_s A eps - A x_s)``;
- reconstruction guidance (:class:`~diff_video.reconstruction_guidance.ReconstructionGuidance`,
  eq. 7): the clean estimate is corrected by the gradient of the measurement's reconstruction
  error through the network, ``x~ = x^ - (w_r alpha_t / 2) grad_{x_t} ||y - A x^(x_t)||^2``,
  so that the unmeasured part agrees with the measured one; the measured part is replaced as above.

:func:`conditional_ddim` is the loop both run: the prior's own time grid, DDIM steps (eq. 12 of
Song et al. 2021, ``eta`` for stochastic ones) from the corrected ``(x0, eps)``, and the
replacement after each step (at the last step, ``t = 0``, the measured part becomes ``y``).
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError, ShapeError
from diffcore.samplers.ddim import ddim_step


def _coefs(schedule, t, like):
    t = torch.as_tensor(t, dtype=torch.float64)
    return schedule.alpha(t).to(like), schedule.sigma(t).to(like)


def _noise(like: torch.Tensor, generator) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    return torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def check_inputs(prior, operator, y: torch.Tensor) -> None:
    """A pixel prior whose samples are the operator's x, a linear operator, and a y of its shape."""
    if getattr(prior, "latent", None) is not None:
        raise DiffcoreError("conditional sampling by replacement or reconstruction guidance works in pixel space; this prior is latent")
    if not getattr(operator, "linear", False):
        raise DiffcoreError(f"replacement needs a linear operator (A, A_pinv); {type(operator).__name__} is not")
    if tuple(operator.x_shape) != tuple(prior.sample_shape):
        raise ShapeError(
            f"the operator takes x of shape {tuple(operator.x_shape)} but the prior's samples have shape {tuple(prior.sample_shape)}"
        )
    if not isinstance(y, torch.Tensor) or tuple(y.shape[1:]) != tuple(operator.y_shape):
        raise ShapeError(f"y has shape {tuple(getattr(y, 'shape', ()))}; expected (N, {', '.join(map(str, operator.y_shape))})")


def conditional_ddim(
    prior,
    operator,
    y: torch.Tensor,
    *,
    steps: int,
    weight: float = 0.0,
    replace: bool = True,
    eta: float = 0.0,
    cond=None,
    generator=None,
    callback=None,
) -> torch.Tensor:
    """Sample ``x`` given ``y = A x`` (see the module docstring); ``weight`` is w_r (0: replacement alone)."""
    check_inputs(prior, operator, y)
    if not isinstance(steps, int) or steps < 1:
        raise DiffcoreError(f"steps must be a positive integer, got {steps!r}")
    if weight < 0:
        raise DiffcoreError(f"the guidance weight must be >= 0, got {weight}")
    schedule = prior.schedule
    ts = schedule.timesteps(steps)
    y = y.detach()
    n = y.shape[0]
    like = torch.empty((n, *prior.sample_shape), dtype=y.dtype, device=y.device)
    x = prior.sample_marginal(n, ts[0], generator=generator, dtype=y.dtype, device=y.device)
    if x is None:
        x = _noise(like, generator) * schedule.init_std(ts[0]).to(like)
    if replace:
        a, s = _coefs(schedule, ts[0], like)
        x = x + operator.A_pinv(a * y + s * operator.A(_noise(like, generator)) - operator.A(x))
    for i in range(len(ts) - 1):
        t, s_time = ts[i], ts[i + 1]
        a_t, s_t = _coefs(schedule, t, like)
        if weight > 0:
            with torch.enable_grad():
                z = x.detach().requires_grad_(True)
                pred = prior.predict(z, t, cond)
                error = (y - operator.A(pred.x0)).pow(2).sum()
                (grad,) = torch.autograd.grad(error, z)
            x0 = pred.x0.detach() - (weight * a_t / 2) * grad
        else:
            with torch.no_grad():
                pred = prior.predict(x, t, cond)
            x0 = pred.x0
        eps = (x - a_t * x0) / s_t
        x = ddim_step(x0, eps, schedule, t, s_time, eta=eta, generator=generator).detach()
        if replace:
            a_s, s_s = _coefs(schedule, s_time, like)
            x = x + operator.A_pinv(a_s * y + s_s * operator.A(_noise(like, generator)) - operator.A(x))
        if callback is not None:
            callback(i, t, x, pred)
    return x


__all__ = ["check_inputs", "conditional_ddim"]
