"""Image files and image metrics for ``diffcore inverse solve``.

Images are float tensors ``(C, H, W)`` with values in [-1, 1], the range of every diffcore
image prior. :func:`read_image` reads PNG, JPEG and whatever else Pillow reads; :func:`png`
writes one image at its own resolution. :func:`psnr` and :func:`ssim` take images in [-1, 1]
(data range 2).

>>> x = torch.zeros(1, 16, 16)
>>> round(psnr(x, x + 0.2), 3)  # 10 log10(2^2 / 0.2^2)
20.0
>>> round(ssim(x, x), 6)
1.0
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from diffcore.errors import DiffcoreError

DATA_RANGE = 2.0  # images live in [-1, 1]


def read_image(path, shape: tuple[int, int, int], *, resize: bool = False, measurement: bool = False) -> torch.Tensor:
    """The image file ``path`` as a float32 ``(C, H, W)`` tensor in [-1, 1] of the given ``shape``.

    Grayscale and colour files are converted to ``C`` channels (1: luminance, 3: RGB; alpha is
    dropped). A file of another size is an error naming the expected size, unless ``resize``
    (bicubic, antialiased when shrinking). ``measurement``: the file is a measurement y, whose size
    is the operator's (never resized).
    """
    c, h, w = shape
    if c not in (1, 3):
        raise DiffcoreError(f"the prior takes images with {c} channels; image files can only give 1 (grayscale) or 3 (RGB)")
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow comes with torchvision and matplotlib
        raise DiffcoreError("reading an image file needs Pillow: pip install pillow") from exc
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            converted = image.convert("L" if c == 1 else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DiffcoreError(f"cannot read image {str(path)!r}: {reason}") from exc
    if converted.size != (w, h):
        if measurement:
            raise DiffcoreError(
                f"measurement {str(path)!r} is {converted.width}x{converted.height} (width x height) but the operator's y is {w}x{h}"
            )
        if not resize:
            raise DiffcoreError(
                f"image {str(path)!r} is {converted.width}x{converted.height} (width x height) but the prior takes {w}x{h}; "
                "pass --resize to resize it"
            )
        converted = converted.resize((w, h), Image.Resampling.BICUBIC)
    data = torch.frombuffer(bytearray(converted.tobytes()), dtype=torch.uint8).reshape(h, w, -1)
    return data.permute(2, 0, 1).float() / 127.5 - 1


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A ``(C, H, W)`` image in [-1, 1] (C = 1 or 3) as a uint8 ``(H, W, 3)`` tensor (clamped, rounded)."""
    x = image.detach().to("cpu", torch.float32).nan_to_num(0.0).clamp(-1, 1)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise DiffcoreError(f"cannot draw an image of shape {tuple(x.shape)}; expected (C, H, W) with C = 1 or 3")
    x = x.expand(3, -1, -1)
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).contiguous()


def png(image: torch.Tensor) -> bytes:
    """PNG bytes of a ``(C, H, W)`` image in [-1, 1], one file pixel per image pixel."""
    from diffcore.tour import encode_png

    try:
        return encode_png(to_uint8(image).numpy())
    except ImportError as exc:
        raise DiffcoreError(str(exc)) from exc


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of ``x`` against ``ref`` (both in [-1, 1]; ``x`` clamped)."""
    a = x.detach().to("cpu", torch.float64).clamp(-1, 1)
    b = ref.detach().to("cpu", torch.float64)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else round(10 * math.log10(DATA_RANGE**2 / mse), 10)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, ref: torch.Tensor, *, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004) of ``x`` against ``ref``, images ``(C, H, W)`` in [-1, 1].

    Gaussian window of standard deviation ``sigma`` on ``2 * round(3.5 sigma) + 1`` taps (11
    for 1.5; smaller for images smaller than that), K1 = 0.01, K2 = 0.03, population
    statistics, mean over the valid part of the SSIM map and over channels: the settings of
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=2)``.
    """
    a = x.detach().to("cpu", torch.float64).clamp(-1, 1)
    b = ref.detach().to("cpu", torch.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise DiffcoreError(f"ssim needs two images (C, H, W) of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    c, h, w = a.shape
    size = min(2 * int(3.5 * sigma + 0.5) + 1, h - (1 - h % 2), w - (1 - w % 2))  # odd, at most the image
    win = _gaussian_window(size, sigma).expand(c, 1, size, size)
    a, b = a[None], b[None]

    def blur(t):
        return F.conv2d(t, win, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return round(float(s.mean()), 10)
