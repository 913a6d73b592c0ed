"""One view edited by a prior: SDEdit (Meng et al. 2022), the editor of the iterative dataset update.

Instruct-NeRF2NeRF (Haque et al. 2023) edits a render with InstructPix2Pix, noised to a random level
and denoised under the instruction and the original image. With any diffcore prior that takes a
condition (a zoo label, a texture, a prompt; guidance where the prior has an unconditional model)
the same step is SDEdit: ``x_t = alpha(t) x + sigma(t) eps`` at ``t = strength``, then DDIM from
``t`` to 0 under the condition. A low strength keeps the view's layout, a high one keeps little of
it. Views and prior may differ in size and channels: the view is resized (bilinear, antialiased) and
averaged to one channel for a one-channel prior, and the edit comes back at the view's size, grey
repeated over the colours. Latent priors are edited in their latent space (encode, noise,
denoise, decode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond


def _to_prior(images: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    c, h, w = shape
    x = images
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    if x.shape[1] != c:
        if c == 1:
            x = x.mean(dim=1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.expand(-1, c, -1, -1)
        else:
            raise DiffcoreError(f"the prior's images have {c} channels; views have {x.shape[1]}")
    return x


def _from_prior(images: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    x = images
    if tuple(x.shape[-2:]) != tuple(like.shape[-2:]):
        x = F.interpolate(x, size=tuple(like.shape[-2:]), mode="bilinear", align_corners=False, antialias=True)
    if x.shape[1] != like.shape[1]:
        x = x.mean(dim=1, keepdim=True).expand(-1, like.shape[1], -1, -1)
    return x.clamp(-1, 1)


@torch.no_grad()
def sdedit(
    prior,
    images: torch.Tensor,
    *,
    cond: Cond | None = None,
    strength: float = 0.6,
    steps: int = 20,
    generator: torch.Generator,
    guidance: float = 1.0,
) -> torch.Tensor:
    """Edit ``images`` (N, C, H, W) in [-1, 1] towards ``prior`` under ``cond`` (see the module docstring)."""
    from diffcore.priors import Guided
    from diffcore.samplers import ddim

    if not 0.0 < float(strength) <= 1.0:
        raise DiffcoreError(f"strength must be in (0, 1], got {strength}")
    if not isinstance(steps, int) or steps < 1:
        raise DiffcoreError(f"steps must be a positive integer, got {steps!r}")
    model = prior if guidance == 1.0 or cond is None else Guided(prior, guidance, cond)
    image_shape = tuple(getattr(prior, "image_shape", prior.sample_shape))
    x = _to_prior(images.float(), image_shape)
    latent = getattr(prior, "latent", None)
    z = latent.encode(x) if latent is not None else x
    ts = prior.schedule.timesteps(steps)
    ts = ts[ts <= float(strength) + 1e-9]
    if ts.numel() < 2:
        raise DiffcoreError(f"strength {strength} leaves no step of {steps}; raise strength or steps")
    t0 = ts[0]
    alpha, sigma = prior.schedule.alpha(t0).to(z), prior.schedule.sigma(t0).to(z)
    noise = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
    z_t = alpha * z + sigma * noise
    out = ddim(model, z_t, ts, cond=None if model is not prior else cond, generator=generator)
    if latent is not None:
        out = latent.decode(out)
    return _from_prior(out, images)
