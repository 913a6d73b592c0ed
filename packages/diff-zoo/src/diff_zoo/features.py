"""Patch features for the cards of the unlabelled zoo priors: a few statistics of each image.

Raw pixels do not tell a diffusion prior from a Gaussian fitted to the same data: the Gaussian
has the data's mean and covariance, so any distance built on first and second moments of
linear features (the Frechet distance on pixels, for one) sees no difference. What separates
images from Gaussian noise is higher-order structure: local contrast varies widely from one
crop to the next (flat sky, sharp edge), and derivative responses are sparse and heavy-tailed
(Field 1987; Simoncelli & Olshausen 2001; Lee, Pedersen & Mumford 2003). :func:`image_statistics`
measures that, per image, on the luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (the channel
itself for grayscale):

0. ``log(std(Y) + 0.01)``: the contrast of the whole crop;
1. ``mean(Y)``: its brightness;
2.-10. at scales 1, 2 and 4 (box-downsampled), on the crop normalised to zero mean and unit
   contrast: the log kurtosis of the horizontal and of the vertical differences
   (``log 3 = 1.1`` for Gaussian noise, larger for sparse edges) and the share of the
   difference energy held by the top 10% of positions (about 0.3 for Gaussian noise, near 1
   for a few edges on flat ground).

The cards compare sets of these 11-dimensional vectors with the Frechet distance, after
dividing each feature by its standard deviation over the held-out set (so the distance is in
units of held-out spread, the same for every set compared).

>>> import torch
>>> noise = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.3
>>> f = image_statistics(noise)
>>> f.shape
torch.Size([64, 11])
>>> round(float(f[:, 2].mean().exp()), 1)  # kurtosis of Gaussian differences
3.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffcore.errors import ShapeError

FEATURE_NAMES = (
    "log contrast",
    "brightness",
    *(f"{what} @ 1/{s}" for s in (1, 2, 4) for what in ("log kurtosis dx", "log kurtosis dy", "top-10% energy")),
)
_EPS = 1e-2  # contrast floor: flat crops (constant phantom background) stay finite


def luminance(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luminance of (N, 1 or 3, H, W) images (Rec. 601 weights for RGB)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ShapeError(f"images have shape {tuple(images.shape)}; expected (N, 1 or 3, H, W)")
    if images.shape[1] == 1:
        return images
    w = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def _log_kurtosis(d: torch.Tensor) -> torch.Tensor:
    m2 = d.pow(2).mean(1)
    m4 = d.pow(4).mean(1)
    return torch.log(m4 / (m2.pow(2) + 1e-12) + 1e-3)


def _top_share(energy: torch.Tensor, share: float = 0.1) -> torch.Tensor:
    k = max(1, round(share * energy.shape[1]))
    return energy.topk(k, dim=1).values.sum(1) / (energy.sum(1) + 1e-12)


def image_statistics(images: torch.Tensor) -> torch.Tensor:
    """The 11 statistics of :data:`FEATURE_NAMES` for each of (N, C, H, W) images in [-1, 1], as float64 (N, 11)."""
    y = luminance(torch.as_tensor(images)).to(torch.float64)
    n = y.shape[0]
    if min(y.shape[-2:]) < 8:
        raise ShapeError(f"images of {tuple(y.shape[-2:])} pixels are too small for statistics at scale 1/4")
    std = y.reshape(n, -1).std(1)
    feats = [torch.log(std + _EPS), y.reshape(n, -1).mean(1)]
    z = (y - y.mean((2, 3), keepdim=True)) / (std.view(n, 1, 1, 1) + _EPS)
    for s in (1, 2, 4):
        u = F.avg_pool2d(z, s) if s > 1 else z
        dx = (u[..., :, 1:] - u[..., :, :-1]).reshape(n, -1)
        dy = (u[..., 1:, :] - u[..., :-1, :]).reshape(n, -1)
        feats += [_log_kurtosis(dx), _log_kurtosis(dy), _top_share(torch.cat([dx, dy], 1).pow(2))]
    return torch.stack(feats, 1)


def scaled(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``features`` divided, column by column, by the standard deviation of ``reference``.

    (The Frechet distance does not change when both sets move by the same vector, so there is no
    need to centre them.)
    """
    return features / reference.std(0).clamp(min=1e-8)


__all__ = ["FEATURE_NAMES", "image_statistics", "luminance", "scaled"]
