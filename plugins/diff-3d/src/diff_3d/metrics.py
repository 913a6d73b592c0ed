"""How close a distilled representation is to a known scene: PSNR on held-out views, and the measures of the 2-D checks.

PSNR is ``10 log10(1 / MSE)`` on images mapped from [-1, 1] to [0, 1] (the usual range of the figure),
per view, averaged over the views.

>>> import torch
>>> round(psnr(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.2)).item(), 2)  # an error of 0.1 in [0, 1]
20.0
"""

from __future__ import annotations

import torch

from diffcore.protocols import Camera


def psnr(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (N,) in dB between images in [-1, 1], measured in [0, 1]."""
    mse = (((images.float() - reference.float()) / 2) ** 2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


@torch.no_grad()
def view_psnr(representation, reference: torch.Tensor, cameras: Camera) -> float:
    """Mean PSNR of ``representation``'s renders from ``cameras`` against the ``reference`` images (the scene's renders)."""
    return float(psnr(representation.render(cameras), reference).mean())


def saturation(images: torch.Tensor, level: float = 0.95) -> float:
    """The share of pixel values beyond ``±level`` (over-saturated colours, SDS's known artefact at high guidance)."""
    return float((images.abs() > level).float().mean())


def diversity(images: torch.Tensor) -> float:
    """Mean pairwise RMS distance between images (N, ...): how much independent runs differ."""
    flat = images.float().flatten(1)
    n = flat.shape[0]
    if n < 2:
        return 0.0
    d = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    return float(d.sum() / (n * (n - 1)))
