"""Deblurring: separable Gaussian blur (SVD) and any kernel through the FFT (circular boundary)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from diff_inverse.operators import functional as F
from diff_inverse.operators._image import image_shape
from diff_inverse.operators.base import LinearOperator
from diff_inverse.operators.fourier import FourierDiagonal
from diff_inverse.operators.separable import Separable
from diffcore.errors import DiffcoreError, ShapeError


class GaussianBlur(Separable):
    """Gaussian blur of standard deviation ``sigma`` on ``size`` x ``size`` taps (odd).

    Boundary: zero padding, 'same' output (``y`` has the shape of ``x``). The blur is the
    Kronecker product of two ``(H, H)`` and ``(W, W)`` 1-D convolution matrices, so its SVD is
    that of :class:`~diff_inverse.operators.separable.Separable`; singular values below
    ``rcond`` (default ``1e-4``) times the largest are dropped, so the operator is the blur
    truncated there (relative change at most ``rcond``) and ``A_pinv`` stays bounded by
    ``1 / (rcond * max(s))``. ``size`` defaults to ``2 ceil(3 sigma) + 1``.
    """

    def __init__(
        self,
        x_shape,
        *,
        sigma: float = 3.0,
        size: int | None = None,
        rcond: float = 1e-4,
        sigma_y: float = 0.0,
        noise: str = "gaussian",
        rate=None,
    ):
        c, h, w = image_shape(x_shape)
        if not isinstance(sigma, (int, float)) or not sigma > 0 or not math.isfinite(sigma):
            raise DiffcoreError(f"blur sigma must be a finite number > 0, got {sigma!r}")
        size = 2 * math.ceil(3 * sigma) + 1 if size is None else size
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise DiffcoreError(f"blur kernel size must be a positive odd int, got {size!r}")
        self.sigma, self.size = float(sigma), size
        self.kernel_1d = F.gaussian_kernel_1d(sigma, size)
        super().__init__(
            (c, h, w),
            F.convolution_matrix_1d(self.kernel_1d, h),
            F.convolution_matrix_1d(self.kernel_1d, w),
            sigma_y,
            rcond=rcond,
            noise=noise,
            rate=rate,
        )


class ConvolutionBlur(FourierDiagonal, LinearOperator):
    """Blur with any 2-D ``kernel`` through the FFT, circular boundary ('same'-size, wrap around).

    ``y = x (*) k`` (true convolution, kernel centre at ``(kh // 2, kw // 2)``), applied per
    channel as ``irfft2(rfft2(x) * K)``. Frequencies with ``|K| <= rcond * max |K|`` are
    dropped (``K`` set to 0 there, so ``A`` is exactly the operator of the SVD and ``A_pinv``
    multiplies by ``1 / K`` on the rest).

    SVD (see :mod:`~diff_inverse.operators.fourier`): ``V`` is the real orthonormal Fourier
    basis, the singular values are ``|K|`` (each conjugate pair gives two coordinates, real and
    imaginary part, with the same value), and ``U`` is the same basis rotated by the phase of
    ``K``. Kept coordinates come first, channel by channel.

    ``kernel``: a 2-D tensor/array (used as is) or the path of a ``.npy`` file (as is) or an
    image (normalised to sum 1).
    """

    has_svd = True

    def __init__(self, x_shape, *, kernel, rcond: float = 1e-4, sigma_y: float = 0.0, noise: str = "gaussian", rate=None):
        c, h, w = image_shape(x_shape)
        if isinstance(kernel, (str, Path)):
            kernel = F.read_kernel(kernel)
        kernel = torch.as_tensor(kernel, dtype=torch.float64).cpu()
        if kernel.ndim != 2 or min(kernel.shape) < 1:
            raise ShapeError(f"blur kernel has shape {tuple(kernel.shape)}; expected a 2-D (kh, kw) kernel")
        if not torch.isfinite(kernel).all() or float(kernel.abs().sum()) == 0:
            raise DiffcoreError("blur kernel must be finite and not all zero")
        if not isinstance(rcond, (int, float)) or not 0 <= rcond < 1:
            raise DiffcoreError(f"rcond must be in [0, 1), got {rcond!r}")
        super().__init__((c, h, w), (c, h, w), sigma_y, noise=noise, rate=rate)
        self.kernel = kernel
        spectrum = F.kernel_spectrum(kernel, h, w)  # (H, W) complex128, Hermitian
        mag = spectrum.abs()
        threshold = rcond * float(mag.max())
        keep = mag > threshold
        self.spectrum = torch.where(keep, spectrum, torch.zeros_like(spectrum))
        self.phase = torch.where(keep, spectrum / torch.where(keep, mag, torch.ones_like(mag)), torch.ones_like(spectrum))
        self.pinv_spectrum = torch.where(keep, 1 / torch.where(keep, spectrum, torch.ones_like(spectrum)), torch.zeros_like(spectrum))
        self._setup_fourier_svd(mag, threshold)

    def A(self, x):
        self.check_x(x)
        return F.fourier_filter(x, self.spectrum)

    def A_adjoint(self, y):
        self.check_y(y)
        return F.fourier_filter(y, self.spectrum.conj())

    def A_pinv(self, y):
        self.check_y(y)
        return F.fourier_filter(y, self.pinv_spectrum)

    def Ut(self, y):
        self.check_y(y)
        rotated = torch.fft.fft2(y, norm="ortho") * self.phase.conj().to(y.device)
        return self._to_svd_order(self.basis.coords(rotated))[:, : self._singulars.numel()]

    def U(self, c):
        z = self.basis.grid(self._from_svd_order(c)) * self.phase.to(c.device)
        return torch.fft.ifft2(z, norm="ortho").real.to(c.dtype)


def blur(
    x_shape,
    *,
    sigma: float | None = None,
    size: int | None = None,
    kernel=None,
    rcond: float = 1e-4,
    sigma_y: float = 0.0,
    noise: str = "gaussian",
    rate=None,
):
    """Deblurring: Gaussian (``sigma``, ``size``; separable, with SVD) or any ``kernel`` (FFT)."""
    if kernel is not None:
        if sigma is not None or size is not None:
            raise DiffcoreError("blur takes either kernel= or sigma=/size=, not both")
        return ConvolutionBlur(x_shape, kernel=kernel, rcond=rcond, sigma_y=sigma_y, noise=noise, rate=rate)
    return GaussianBlur(x_shape, sigma=3.0 if sigma is None else sigma, size=size, rcond=rcond, sigma_y=sigma_y, noise=noise, rate=rate)


def motion_blur(
    x_shape,
    *,
    length: float = 9,
    angle: float = 0.0,
    size: int | None = None,
    rcond: float = 1e-4,
    sigma_y: float = 0.0,
    noise: str = "gaussian",
    rate=None,
):
    """Linear motion blur of ``length`` pixels at ``angle`` degrees (FFT, circular boundary)."""
    return ConvolutionBlur(x_shape, kernel=F.motion_kernel(length, angle, size), rcond=rcond, sigma_y=sigma_y, noise=noise, rate=rate)
