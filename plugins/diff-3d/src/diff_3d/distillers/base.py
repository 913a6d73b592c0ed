"""What SDS, SJC and VSD share: noise levels and their annealing, the prior's space, guidance, the surrogate loss.

- :class:`NoiseLevels`: ``t ~ U(t_min, t_max(step))`` (DreamFusion, sec. 3: t in [0.02, 0.98]),
  with ``t_max`` annealed towards ``t_end`` over training (ProlificDreamer, sec. 5; DreamTime,
  Huang et al. 2023), snapped to a discrete schedule's training grid ``t = (i + 1) / T``;
- :func:`to_prior_space`: renders -> what the prior denoises: resized to ``prior.image_shape``,
  colour or grey as the prior has it, encoded by ``prior.latent`` for a latent prior (differentiably,
  so the gradient reaches the renders through the encoder);
- :func:`predict_guided`: classifier-free guidance in diffusers' convention,
  ``eps = eps_uncond + scale (eps_cond - eps_uncond)`` (:class:`diffcore.priors.Guided`): ``scale = 1``
  is the conditional model. DreamFusion writes ``(1 + w) eps_cond - w eps_uncond``, so its w = 100 is
  ``scale = 101`` here;
- :func:`surrogate_loss`: the stop-gradient form of a distillation gradient ``g`` on ``z``,
  ``0.5 |z - stopgrad(z - g)|^2 / N``, whose gradient is ``g / N`` and which never differentiates
  the prior (the convention of :class:`diffcore.protocols.LossDistiller`).

>>> import torch
>>> z = torch.zeros(2, 3, requires_grad=True)
>>> g = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]])
>>> surrogate_loss(z, g).backward()
>>> z.grad.tolist()
[[0.5, 1.0, 1.5], [0.0, 0.0, 2.0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

from diffcore.errors import DiffcoreError
from diffcore.priors import Guided
from diffcore.protocols import Camera, Cond, Prediction
from diffcore.schedules import DiscreteSchedule

ANNEALING = ("linear", "sqrt")


@dataclass(frozen=True)
class NoiseLevels:
    """Times ``t ~ U(t_min, t_max(step))``; ``t_max`` goes from ``t_max`` to ``t_end`` over the run (``None``: it stays)."""

    t_min: float = 0.02
    t_max: float = 0.98
    t_end: float | None = None
    anneal: str = "linear"

    def __post_init__(self):
        if not 0 < self.t_min <= self.t_max <= 1:
            raise DiffcoreError(f"noise levels need 0 < t_min <= t_max <= 1, got t_min={self.t_min}, t_max={self.t_max}")
        if self.t_end is not None and not self.t_min <= self.t_end <= 1:
            raise DiffcoreError(f"t_end must lie in [t_min, 1] = [{self.t_min}, 1], got {self.t_end}")
        if self.anneal not in ANNEALING:
            raise DiffcoreError(f"unknown annealing {self.anneal!r}; expected one of {', '.join(ANNEALING)}")

    def bounds(self, step: int, total_steps: int | None) -> tuple[float, float]:
        """``(t_min, t_max)`` at ``step`` of ``total_steps``: linear (or square-root) in the share of the run done."""
        if self.t_end is None or total_steps is None:
            return self.t_min, self.t_max
        done = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
        if self.anneal == "sqrt":
            done = math.sqrt(done)
        return self.t_min, max(self.t_min, self.t_max + (self.t_end - self.t_max) * done)

    def draw(self, schedule, n: int, step: int, total_steps: int | None, generator: torch.Generator) -> torch.Tensor:
        """``n`` times (float64, CPU), one uniform draw each from ``generator``; on a discrete schedule's grid."""
        lo, hi = self.bounds(step, total_steps)
        t = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
        if isinstance(schedule, DiscreteSchedule):
            steps = schedule.num_train_timesteps
            t = (t * steps).round().clamp(1, steps) / steps
        return t


def coefficients(prior, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``alpha(t)``, ``sigma(t)`` (computed in float64) shaped (N, 1, 1, 1) in ``like``'s dtype and device."""
    shape = (-1,) + (1,) * (like.ndim - 1)
    alpha = prior.schedule.alpha(t).reshape(shape).to(like)
    sigma = prior.schedule.sigma(t).reshape(shape).to(like)
    return alpha, sigma


def to_prior_space(prior, images: torch.Tensor) -> torch.Tensor:
    """Renders (N, C, H, W) in [-1, 1] -> the prior's sample space (see the module docstring), float32, differentiable."""
    if images.ndim != 4:
        raise DiffcoreError(f"renders must be images (N, C, H, W), got shape {tuple(images.shape)}")
    channels, height, width = prior.image_shape
    x = images.float()
    if x.shape[1] != channels:
        if channels == 1 and x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)  # a grey prior sees the renders' brightness
        elif channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        else:
            raise DiffcoreError(f"the renders have {x.shape[1]} channels and the prior's images {channels}; render {channels} channels")
    if tuple(x.shape[-2:]) != (height, width):
        shrink = x.shape[-2] > height or x.shape[-1] > width
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    if prior.latent is not None:
        x = prior.latent.encode(x).float()
    return x


def with_camera(prior, cond: Cond | None, camera: Camera | None) -> Cond | None:
    """``cond`` with the cameras' poses in ``cond.camera`` when the prior is view-conditioned (it accepts ``camera``)."""
    if "camera" not in prior.accepts:
        return cond
    if camera is None:
        raise DiffcoreError("this prior is view-conditioned (it accepts camera): distil it from renders with their cameras")
    return replace(cond if cond is not None else Cond(), camera=camera.camera_to_worlds)


def _tensors_only(cond: Cond) -> bool:
    return all(getattr(cond, f.name) is None or isinstance(getattr(cond, f.name), torch.Tensor) for f in fields(Cond))


def predict_guided(prior, x_t: torch.Tensor, t: torch.Tensor, cond: Cond | None, scale: float) -> Prediction:
    """The prior's prediction under classifier-free guidance of strength ``scale`` (see the module docstring)."""
    if scale == 1.0 or cond is None or not (cond.given() - {"camera"}):
        return prior.predict(x_t, t, cond)
    null = prior.null_cond
    if null is None:
        raise DiffcoreError(
            f"guidance_scale {scale} needs the prior's unconditional model and it has none (null_cond is None); use guidance_scale=1"
        )
    uncond = replace(null, camera=cond.camera) if cond.camera is not None else null
    if _tensors_only(cond) and _tensors_only(uncond):
        return Guided(prior, scale, cond, uncond).predict(x_t, t)  # one batch of 2N
    conditional, unconditional = prior.predict(x_t, t, cond), prior.predict(x_t, t, uncond)  # a prompt as text: the prior encodes it
    eps = unconditional.eps + scale * (conditional.eps - unconditional.eps)
    if not prior.consistent:
        return Prediction(x0=unconditional.x0 + scale * (conditional.x0 - unconditional.x0), eps=eps)
    alpha, sigma = coefficients(prior, t, x_t)
    return Prediction.from_eps(x_t, eps, alpha, sigma)


def surrogate_loss(z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``0.5 |z - stopgrad(z - g)|^2 / N`` in float32: its gradient in ``z`` is ``g / N``."""
    z32 = z.float()
    target = (z32 - g.float()).detach()
    return 0.5 * ((z32 - target) ** 2).sum() / z.shape[0]


def clip_gradient(g: torch.Tensor, clip: float | None) -> torch.Tensor:
    """Non-finite entries zeroed and, with ``clip``, each entry clamped to ``[-clip, clip]`` (threestudio's grad_clip)."""
    g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
    return g if clip is None else g.clamp(-clip, clip)


def check_options(guidance_scale: float, grad_clip: float | None) -> None:
    if not guidance_scale >= 0:
        raise DiffcoreError(f"guidance_scale must be >= 0, got {guidance_scale}")
    if grad_clip is not None and not grad_clip > 0:
        raise DiffcoreError(f"grad_clip must be positive (or None), got {grad_clip}")
