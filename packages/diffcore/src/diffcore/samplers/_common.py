"""Pieces every sampler shares: schedule coefficients at a time, and the model call."""

from __future__ import annotations

import torch


def coefs(schedule, t, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``alpha(t), sigma(t)`` as 0-d tensors in ``like``'s dtype and device (computed in float64)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return schedule.alpha(t).to(like), schedule.sigma(t).to(like)


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` on its own device."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
