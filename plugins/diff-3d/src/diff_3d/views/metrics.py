"""Image quality of novel views: PSNR and SSIM per image, for images in [-1, 1].

SSIM is Wang et al. (2004)'s structural similarity with their constants (``K1 = 0.01``,
``K2 = 0.03``, data range 1 on images mapped to [0, 1]) and an 11-tap Gaussian window of standard
deviation 1.5, averaged over the channels and over the positions where the window fits (no
padding), as scikit-image's ``structural_similarity(..., gaussian_weights=True,
use_sample_covariance=False)`` computes it.

>>> import torch
>>> x = torch.rand(2, 3, 16, 16) * 2 - 1
>>> [round(v, 6) for v in ssim(x, x).tolist()], bool((psnr(x, x) > 100).all())
([1.0, 1.0], True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """PSNR (N,) in dB of images in [-1, 1] against ``reference``, on the [0, 1] scale (peak 1)."""
    mse = ((images.float() - reference.float()) / 2).pow(2).flatten(1).mean(dim=1)
    return -10 * torch.log10(mse.clamp_min(1e-12))


def _window(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(images: torch.Tensor, reference: torch.Tensor, *, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM (N,) of images in [-1, 1] against ``reference`` (see the module docstring)."""
    x = ((images.double() + 1) / 2).clamp(0, 1)
    y = ((reference.double() + 1) / 2).clamp(0, 1)
    n, c, h, w = x.shape
    size = min(size, h, w)
    g = _window(size, sigma)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, size, size).to(x)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, kernel, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return value.flatten(1).mean(dim=1).float()
