"""MRI: undersampled 2-D Fourier measurements (random or equispaced lines, radial spokes)."""

from __future__ import annotations

import torch

from diff_inverse.operators import functional as F
from diff_inverse.operators._image import image_shape
from diff_inverse.operators.base import LinearOperator
from diff_inverse.operators.fourier import FourierDiagonal
from diffcore.errors import DiffcoreError, ShapeError


class MRI(FourierDiagonal, LinearOperator):
    """``y = M * fft2(x, norm="ortho")``, complex k-space stored as real ``(C, H, W, 2)``.

    The trailing dimension holds (real, imaginary); frequencies are unshifted (DC at
    ``[0, 0]``) and unsampled ones are 0. The mask ``M`` (``(H, W)``, the same for every
    channel) is made Hermitian-symmetric (a frequency is sampled with its conjugate), so for
    real ``x`` the operator is a partial isometry: ``A^T A`` is an orthogonal projection,
    ``A_adjoint(y) = Re(ifft2(M * y))`` is also the exact pseudo-inverse, and the singular
    values are all 1. SVD (see :mod:`~diff_inverse.operators.fourier`): ``V`` is the real
    orthonormal Fourier basis with the sampled coordinates first; ``U`` writes a conjugate
    pair's two coordinates ``a, b`` as ``(a + i b) / sqrt(2)`` at ``k`` and its conjugate at
    ``-k``.

    ``mask``: ``"random"`` or ``"equispaced"`` columns with a fully sampled centre
    (``acceleration``, ``center_fraction``, ``seed``), ``"radial"`` (``lines`` spokes), or a
    boolean ``(H, W)`` tensor of unshifted frequencies.
    """

    def __init__(
        self,
        x_shape,
        *,
        mask="random",
        acceleration: float = 4,
        center_fraction: float = 0.08,
        lines: int = 30,
        seed: int = 0,
        sigma_y: float = 0.0,
        noise: str = "gaussian",
        rate=None,
    ):
        c, h, w = image_shape(x_shape)
        if isinstance(mask, str):
            if mask in ("random", "equispaced"):
                m = F.line_mask(h, w, acceleration, center_fraction, mask, seed)
            elif mask == "radial":
                m = F.radial_mask(h, w, lines)
            else:
                raise DiffcoreError(f"unknown MRI mask {mask!r}; use 'random', 'equispaced', 'radial' or a boolean (H, W) tensor")
        else:
            m = torch.as_tensor(mask).cpu() != 0
            if tuple(m.shape) != (h, w):
                raise ShapeError(f"MRI mask has shape {tuple(m.shape)}; expected ({h}, {w}) like the image")
            m = F.hermitian_symmetric(m)
        if not m.any():
            raise DiffcoreError("the MRI mask samples no frequency")
        super().__init__((c, h, w), (c, h, w, 2), sigma_y, noise=noise, rate=rate)
        self.mask = m
        self._setup_fourier_svd(m.to(torch.float64), 0.5)

    def A(self, x):
        self.check_x(x)
        k = torch.fft.fft2(x, norm="ortho") * self.mask.to(x.device)
        return torch.view_as_real(k).to(x.dtype)

    def A_adjoint(self, y):
        self.check_y(y)
        k = torch.view_as_complex(y.contiguous()) * self.mask.to(y.device)
        return torch.fft.ifft2(k, norm="ortho").real.to(y.dtype)

    A_pinv = A_adjoint

    def measure(self, x, generator=None):
        """Noisy sampled frequencies; the unsampled ones stay exactly 0."""
        return super().measure(x, generator) * self.mask.to(x.device)[..., None]

    has_svd = True

    def Ut(self, y):
        self.check_y(y)
        return self._to_svd_order(self.basis.coords(torch.view_as_complex(y.contiguous())))[:, : self._singulars.numel()]

    def U(self, c):
        return torch.view_as_real(self.basis.grid(self._from_svd_order(c))).to(c.dtype)
