"""A real orthonormal Fourier basis, for the SVD of Fourier-diagonal operators (FFT blur, MRI).

For a real ``(H, W)`` image with ``X = fft2(x, norm="ortho")``, ``X[-k] = conj(X[k])``, so the
real coordinates are: ``Re X[k]`` for each self-conjugate frequency (``k = -k`` mod the size:
DC and the Nyquist rows/columns' crossings), and ``sqrt(2) Re X[k]``, ``sqrt(2) Im X[k]`` for
one representative ``k`` of each conjugate pair ``{k, -k}``. Their count is ``H W`` and they
keep the norm (Parseval), so they are the coordinates in a real orthonormal basis.
An operator that multiplies each frequency by ``K[k]`` with ``K[-k] = conj(K[k])`` (a real
kernel's spectrum, or a symmetric 0/1 mask) is diagonal in it up to a phase:
``A = U diag(|K|) V^T`` with ``V`` this basis and ``U`` the same basis rotated by
``K / |K|``.
"""

from __future__ import annotations

import math

import torch


class RealFourierBasis:
    """Index sets of the real Fourier coordinates of an ``(H, W)`` grid (flat, unshifted).

    Coordinate order: the self-conjugate frequencies (raster order), then the real parts of the
    pair representatives (``k`` with flat index below that of ``-k``), then their imaginary
    parts.
    """

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        kh, kw = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        flat = (kh * width + kw).reshape(-1)
        neg = (((-kh) % height) * width + (-kw) % width).reshape(-1)
        self.self_conjugate = flat[flat == neg]
        self.pairs = flat[flat < neg]
        self.partners = neg[flat < neg]

    def per_coordinate(self, values: torch.Tensor) -> torch.Tensor:
        """A real per-frequency quantity ``(H, W)`` (for example ``|K|``) laid out per coordinate."""
        v = values.reshape(-1)
        return torch.cat([v[self.self_conjugate], v[self.pairs], v[self.pairs]])

    def coords(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., H, W)`` complex -> ``(..., H W)`` real: the coordinates of its Hermitian part.

        For the spectrum of a real image the Hermitian part is the spectrum itself; for any
        other ``z`` this is the transpose of :meth:`grid` (the real inner product on the
        complex grid).
        """
        flat = z.reshape(*z.shape[:-2], -1)
        sym_self = flat[..., self.self_conjugate.to(z.device)].real
        pair = (flat[..., self.pairs.to(z.device)] + flat[..., self.partners.to(z.device)].conj()) / math.sqrt(2)
        return torch.cat([sym_self, pair.real, pair.imag], -1)

    def grid(self, c: torch.Tensor) -> torch.Tensor:
        """``(..., H W)`` real coordinates -> the Hermitian ``(..., H, W)`` complex grid."""
        ns, npairs = self.self_conjugate.numel(), self.pairs.numel()
        dtype = torch.complex128 if c.dtype == torch.float64 else torch.complex64
        z = torch.zeros(*c.shape[:-1], self.height * self.width, dtype=dtype, device=c.device)
        z[..., self.self_conjugate.to(c.device)] = c[..., :ns].to(dtype)
        half = torch.complex(c[..., ns : ns + npairs], c[..., ns + npairs :]) / math.sqrt(2)
        z[..., self.pairs.to(c.device)] = half
        z[..., self.partners.to(c.device)] = half.conj()
        return z.reshape(*c.shape[:-1], self.height, self.width)


class FourierDiagonal:
    """SVD mixin for operators ``x -> K * fft2(x)`` per channel (``x_shape = (C, H, W)``).

    Subclasses call :meth:`_setup_fourier_svd` with ``|K|`` (``(H, W)``, symmetric) and a
    threshold; coordinates whose ``|K|`` is above it come first (channel by channel), then the
    rest. ``Vt``/``V`` are the real Fourier basis; subclasses give ``U``/``Ut``.
    """

    def _setup_fourier_svd(self, magnitude: torch.Tensor, threshold: float) -> None:
        c, h, w = self.x_shape
        self.basis = RealFourierBasis(h, w)
        s = self.basis.per_coordinate(magnitude.to(torch.float64))
        kept = (s > threshold).expand(c, -1).reshape(-1)
        self.order = torch.cat([kept.nonzero().squeeze(1), (~kept).nonzero().squeeze(1)])
        self.inverse_order = torch.argsort(self.order)
        self._singulars = s.expand(c, -1).reshape(-1)[kept]

    def singulars(self):
        return self._singulars

    def _to_svd_order(self, coords: torch.Tensor) -> torch.Tensor:
        return coords.reshape(coords.shape[0], -1)[:, self.order.to(coords.device)]

    def _from_svd_order(self, c: torch.Tensor) -> torch.Tensor:
        n = math.prod(self.x_shape)
        if c.shape[1] < n:
            c = torch.cat([c, c.new_zeros(c.shape[0], n - c.shape[1])], 1)
        return c[:, self.inverse_order.to(c.device)].reshape(c.shape[0], self.x_shape[0], -1)

    def Vt(self, x):
        self.check_x(x)
        return self._to_svd_order(self.basis.coords(torch.fft.fft2(x, norm="ortho")))

    def V(self, c):
        return torch.fft.ifft2(self.basis.grid(self._from_svd_order(c)), norm="ortho").real.to(c.dtype)
