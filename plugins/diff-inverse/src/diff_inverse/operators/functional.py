"""Pure tensor kernels behind the operators: masks, 1-D matrices, blur kernels, Fourier and Radon maps.

Functions only, no state (the operator classes hold what these build once). Images are
``(N, C, H, W)``; 1-D matrices are small (``H x H`` at most), never ``n x n`` for an image of
``n`` pixels. Randomness only through an explicit seed or ``torch.Generator``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from diffcore.errors import DiffcoreError, ShapeError


# -- orthonormal helpers ---------------------------------------------------------------------
def householder_basis(b: int, dtype=torch.float64) -> torch.Tensor:
    """A symmetric orthogonal ``(b, b)`` matrix whose first column is ``ones(b) / sqrt(b)``.

    The Householder reflection that maps ``e_1`` to the normalised all-ones vector; its other
    columns are an orthonormal basis of the zero-mean vectors.

    >>> Q = householder_basis(4)
    >>> bool(torch.allclose(Q @ Q.T, torch.eye(4, dtype=Q.dtype))), round(float(Q[0, 0]), 3)
    (True, 0.5)
    """
    u = torch.full((b,), 1 / math.sqrt(b), dtype=dtype)
    v = -u
    v[0] += 1
    if float(v.norm()) < 1e-12:  # b == 1: already e_1
        return torch.eye(b, dtype=dtype)
    return torch.eye(b, dtype=dtype) - 2 * torch.outer(v, v) / (v @ v)


def haar_orthogonal(n: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """A Haar-random ``(n, n)`` orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    g = torch.randn(n, n, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(g)
    return q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones((), dtype=dtype))


# -- inpainting masks ------------------------------------------------------------------------
def box_mask(height: int, width: int, box) -> torch.Tensor:
    """Boolean ``(H, W)`` mask, True where observed: everything but ``box = (top, left, h, w)``."""
    if len(box) != 4 or any(not isinstance(v, int) or isinstance(v, bool) for v in box):
        raise DiffcoreError(f"box must be four ints (top, left, height, width), got {box!r}")
    top, left, h, w = box
    if top < 0 or left < 0 or h <= 0 or w <= 0 or top + h > height or left + w > width:
        raise DiffcoreError(
            f"box (top={top}, left={left}, height={h}, width={w}) must lie inside the {height}x{width} image and be non-empty"
        )
    mask = torch.ones(height, width, dtype=torch.bool)
    mask[top : top + h, left : left + w] = False
    return mask


def random_pixel_mask(height: int, width: int, fraction: float, seed: int = 0) -> torch.Tensor:
    """Boolean ``(H, W)`` mask with ``round(fraction * H * W)`` pixels removed (False), chosen by ``seed``."""
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise DiffcoreError(f"fraction (the share of pixels removed) must be in [0, 1), got {fraction!r}")
    g = torch.Generator().manual_seed(int(seed))
    removed = torch.randperm(height * width, generator=g)[: round(fraction * height * width)]
    mask = torch.ones(height * width, dtype=torch.bool)
    mask[removed] = False
    return mask.reshape(height, width)


def read_gray_image(path) -> torch.Tensor:
    """A grayscale image file as a float64 ``(H, W)`` tensor in [0, 1] (PIL)."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow comes with torchvision
        raise ImportError("reading an image file needs Pillow: pip install pillow") from exc
    path = Path(path)
    try:
        with Image.open(path) as image:
            gray = image.convert("L")
            data = torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8).reshape(gray.height, gray.width)
    except (OSError, ValueError) as exc:
        raise DiffcoreError(f"cannot read image {str(path)!r}: {exc}") from exc
    return data.to(torch.float64) / 255


# -- 1-D matrices for separable operators ---------------------------------------------------
def gaussian_kernel_1d(sigma: float, size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` (pixels) on ``size`` (odd) taps."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-0.5 * (r / sigma) ** 2)
    return k / k.sum()


def convolution_matrix_1d(kernel: torch.Tensor, n: int) -> torch.Tensor:
    """``(n, n)`` matrix of 'same' convolution with an odd-length ``kernel``, zero padding.

    ``(B x)[i] = sum_j kernel[j - i + r] x[j]`` with ``r = len(kernel) // 2`` (the kernel is
    applied centred; for a symmetric kernel convolution and correlation agree).
    """
    r = kernel.numel() // 2
    i = torch.arange(n)
    offset = i[None, :] - i[:, None] + r
    inside = (offset >= 0) & (offset < kernel.numel())
    return torch.where(inside, kernel.to(torch.float64)[offset.clamp(0, kernel.numel() - 1)], torch.zeros((), dtype=torch.float64))


def _cubic(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def bicubic_matrix_1d(n: int, factor: int) -> torch.Tensor:
    """``(n // factor, n)`` antialiased bicubic downsampling (Keys, a = -0.5).

    The same weights as ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` and
    PIL's bicubic resize: the cubic kernel stretched by ``factor``, truncated at the borders and
    renormalised so each row sums to 1.
    """
    out = n // factor
    support = 2.0 * factor
    rows = torch.zeros(out, n, dtype=torch.float64)
    for i in range(out):
        center = factor * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n)
        j = torch.arange(lo, hi, dtype=torch.float64)
        w = _cubic((j - center + 0.5) / factor)
        rows[i, lo:hi] = w / w.sum()
    return rows


# -- general blur kernels (FFT, circular boundary) -----------------------------------------
def motion_kernel(length: float, angle: float, size: int | None = None) -> torch.Tensor:
    """A normalised linear motion-blur kernel: a segment of ``length`` pixels at ``angle`` degrees.

    The segment is centred and drawn with bilinear splatting of densely spaced points, so any
    real length and angle give a smooth kernel; ``size`` (odd) defaults to the smallest that
    holds it.

    >>> k = motion_kernel(5, 0)
    >>> tuple(k.shape), round(float(k.sum()), 6), bool((k[k.shape[0] // 2] > 0).sum() >= 5)
    ((7, 7), 1.0, True)
    """
    if not isinstance(length, (int, float)) or not length >= 1:
        raise DiffcoreError(f"motion blur length must be >= 1 pixel, got {length!r}")
    if size is None:
        size = 2 * math.ceil((length + 1) / 2) + 1
    if size % 2 == 0 or size < length:
        raise DiffcoreError(f"motion kernel size must be odd and >= length {length}, got {size}")
    c = (size - 1) / 2
    theta = math.radians(angle)
    t = torch.linspace(-(length - 1) / 2, (length - 1) / 2, 8 * math.ceil(length) + 1, dtype=torch.float64)
    px, py = c + t * math.cos(theta), c - t * math.sin(theta)
    kernel = torch.zeros(size, size, dtype=torch.float64)
    x0, y0 = px.floor().long(), py.floor().long()
    fx, fy = px - x0, py - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = (x0 + dx).clamp(0, size - 1), (y0 + dy).clamp(0, size - 1)
        kernel.index_put_((yi, xi), w, accumulate=True)
    return kernel / kernel.sum()


def read_kernel(path) -> torch.Tensor:
    """A blur kernel from a ``.npy`` file (used as is) or an image file (normalised to sum 1)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        import numpy as np

        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DiffcoreError(f"cannot read kernel {str(path)!r}: {exc}") from exc
        return torch.as_tensor(array, dtype=torch.float64)
    kernel = read_gray_image(path)
    if float(kernel.sum()) <= 0:
        raise DiffcoreError(f"kernel image {str(path)!r} is all black")
    return kernel / kernel.sum()


def kernel_spectrum(kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``fft2`` of ``kernel`` zero-padded to ``(H, W)`` with its centre moved to pixel (0, 0)."""
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ShapeError(f"kernel of size {kh}x{kw} is larger than the {height}x{width} image")
    full = torch.zeros(height, width, dtype=torch.float64)
    full[:kh, :kw] = kernel.to(torch.float64)
    full = torch.roll(full, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
    return torch.fft.fft2(full)


def fourier_filter(x: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
    """Circular convolution of real ``x`` (..., H, W) with a real filter whose ``fft2`` is ``spectrum``."""
    h, w = x.shape[-2:]
    half = spectrum[..., : w // 2 + 1].to(device=x.device, dtype=torch.complex128 if x.dtype == torch.float64 else torch.complex64)
    out = torch.fft.irfft2(torch.fft.rfft2(x) * half, s=(h, w))
    return out.to(x.dtype)


# -- MRI sampling masks (unshifted frequencies: DC at [0, 0]) ------------------------------
def hermitian_symmetric(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` or its point reflection ``k -> -k`` (mod the size): sampled with its conjugate."""
    h, w = mask.shape
    flip = mask[(-torch.arange(h)) % h][:, (-torch.arange(w)) % w]
    return mask | flip


def line_mask(height: int, width: int, acceleration: float, center_fraction: float, kind: str, seed: int = 0) -> torch.Tensor:
    """fastMRI-style column mask (phase encoding along W), unshifted, Hermitian-symmetric.

    ``round(W * center_fraction)`` central columns are always sampled; the others are drawn at
    random (``kind="random"``, with the probability that keeps ``W / acceleration`` columns on
    average) or taken every ``acceleration``-th column (``kind="equispaced"``).
    """
    if not isinstance(acceleration, (int, float)) or not acceleration >= 1:
        raise DiffcoreError(f"acceleration must be >= 1, got {acceleration!r}")
    if not isinstance(center_fraction, (int, float)) or not 0 <= center_fraction <= 1:
        raise DiffcoreError(f"center_fraction must be in [0, 1], got {center_fraction!r}")
    ncenter = round(width * center_fraction)
    cols = torch.zeros(width, dtype=torch.bool)
    start = (width - ncenter + 1) // 2
    cols[start : start + ncenter] = True
    if kind == "random":
        prob = (width / acceleration - ncenter) / max(width - ncenter, 1)
        g = torch.Generator().manual_seed(int(seed))
        cols |= torch.rand(width, generator=g, dtype=torch.float64) < prob
    elif kind == "equispaced":
        step = max(round(acceleration), 1)
        cols[torch.arange(0, width, step)] = True
    else:
        raise DiffcoreError(f"unknown line mask {kind!r}; use 'random' or 'equispaced'")
    shifted = cols[None, :].expand(height, width)
    return hermitian_symmetric(torch.fft.ifftshift(shifted, dim=(0, 1)).contiguous())


def radial_mask(height: int, width: int, lines: int) -> torch.Tensor:
    """``lines`` radial spokes through the k-space centre at evenly spaced angles, unshifted."""
    if not isinstance(lines, int) or lines < 1:
        raise DiffcoreError(f"lines must be a positive int, got {lines!r}")
    mask = torch.zeros(height, width, dtype=torch.bool)
    radius = math.hypot(height, width) / 2
    t = torch.arange(-radius, radius + 0.25, 0.25, dtype=torch.float64)
    for i in range(lines):
        theta = math.pi * i / lines
        r = torch.round(height // 2 - t * math.sin(theta)).long()
        c = torch.round(width // 2 + t * math.cos(theta)).long()
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        mask[r[inside], c[inside]] = True
    return hermitian_symmetric(torch.fft.ifftshift(mask, dim=(0, 1)).contiguous())


# -- parallel-beam Radon transform -----------------------------------------------------------
def radon_geometry(height: int, width: int, angles: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-angle ``(cos, sin)`` (float64, ``(angles,)``) and the number of detector bins.

    Views at ``pi * a / angles``; detector bins of one pixel, centred on the image centre,
    ``ceil(hypot(H, W)) + 1`` of them so that every pixel projects inside.
    """
    theta = torch.arange(angles, dtype=torch.float64) * math.pi / angles
    return torch.cos(theta), torch.sin(theta), math.ceil(math.hypot(height, width)) + 1


def _radon_weights(height: int, width: int, cos: float, sin: float, bins: int, supersample: int, device):
    """Per sub-pixel offset: lower detector bin and linear weight of every pixel, for one view."""
    offsets = (torch.arange(supersample, dtype=torch.float64) + 0.5) / supersample - 0.5
    xs = torch.arange(width, dtype=torch.float64, device=device) - (width - 1) / 2
    ys = (height - 1) / 2 - torch.arange(height, dtype=torch.float64, device=device)
    centre = (xs[None, :] * cos + ys[:, None] * sin).reshape(-1) + (bins - 1) / 2
    for ox in offsets.tolist():
        for oy in offsets.tolist():
            u = centre + (ox * cos + oy * sin)
            i0 = u.floor().long()
            yield i0, u - i0


def radon(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bins: int, supersample: int = 2) -> torch.Tensor:
    """Pixel-driven parallel-beam projection: ``(N, C, H, W) -> (N, C, angles, bins)``.

    Each pixel is split into ``supersample^2`` sub-pixels; each sub-pixel's share of the value
    goes to the two detector bins around its projection ``t = x cos(theta) + y sin(theta)``
    with linear weights (a sparse map applied per view, no matrix stored). Sub-pixels remove
    most of the plain pixel-driven model's angle-dependent aliasing (a centred disk projects
    the same at every angle to about 2% instead of 10%).
    """
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w) / supersample**2
    out = x.new_zeros(n * c, cos.numel(), bins)
    for a in range(cos.numel()):
        for i0, frac in _radon_weights(h, w, float(cos[a]), float(sin[a]), bins, supersample, x.device):
            frac = frac.to(x.dtype)
            out[:, a].index_add_(1, i0, flat * (1 - frac)).index_add_(1, i0 + 1, flat * frac)
    return out.reshape(n, c, cos.numel(), bins)


def backproject(y: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, height: int, width: int, supersample: int = 2) -> torch.Tensor:
    """The exact adjoint of :func:`radon`: ``(N, C, angles, bins) -> (N, C, H, W)``."""
    n, c, angles, bins = y.shape
    flat = y.reshape(n * c, angles, bins)
    out = y.new_zeros(n * c, height * width)
    for a in range(angles):
        for i0, frac in _radon_weights(height, width, float(cos[a]), float(sin[a]), bins, supersample, y.device):
            frac = frac.to(y.dtype)
            out += flat[:, a, i0] * (1 - frac) + flat[:, a, i0 + 1] * frac
    return (out / supersample**2).reshape(n, c, height, width)


def conjugate_gradient(normal, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` CG iterations on ``normal(z) = b`` from ``z = 0``, per item of the batch.

    Started at 0 the iterates stay in the range of ``A^T``, so on ``A^T A z = A^T y`` they tend
    to the minimum-norm least-squares solution ``A^+ y``.
    """
    dims = tuple(range(1, b.ndim))
    z = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = (r * r).sum(dims, keepdim=True)
    tiny = torch.finfo(b.dtype).tiny
    for _ in range(steps):
        q = normal(p)
        alpha = rr / (p * q).sum(dims, keepdim=True).clamp_min(tiny)
        z = z + alpha * p
        r = r - alpha * q
        rr_new = (r * r).sum(dims, keepdim=True)
        p = r + (rr_new / rr.clamp_min(tiny)) * p
        rr = rr_new
    return z
