"""Sparse-view CT: parallel-beam Radon transform."""

from __future__ import annotations

from diff_inverse.operators import functional as F
from diff_inverse.operators._image import image_shape
from diff_inverse.operators.base import LinearOperator
from diffcore.errors import DiffcoreError


class CT(LinearOperator):
    """Parallel-beam projections at ``angles`` views over [0, pi): ``(C, H, W) -> (C, angles, D)``.

    Pixel-driven (each pixel split into ``supersample^2`` sub-pixels) with linear interpolation
    onto ``D = ceil(hypot(H, W)) + 1`` detector bins of one pixel
    (:func:`~diff_inverse.operators.functional.radon`); no matrix is stored, the per-view
    weights are recomputed on each call. ``A_adjoint`` is the exact backprojection.
    ``A_pinv`` runs ``cg_steps`` conjugate-gradient iterations on the normal equations
    ``A^T A x = A^T y`` from 0 (tends to the minimum-norm least-squares solution; not exact
    after a finite number of steps). No SVD.
    """

    def __init__(
        self,
        x_shape,
        *,
        angles: int = 30,
        cg_steps: int = 50,
        supersample: int = 2,
        sigma_y: float = 0.0,
        noise: str = "gaussian",
        rate=None,
    ):
        c, h, w = image_shape(x_shape)
        if not isinstance(angles, int) or isinstance(angles, bool) or angles < 1:
            raise DiffcoreError(f"angles (number of views) must be a positive int, got {angles!r}")
        if not isinstance(cg_steps, int) or cg_steps < 1:
            raise DiffcoreError(f"cg_steps must be a positive int, got {cg_steps!r}")
        self.cos, self.sin, bins = F.radon_geometry(h, w, angles)
        if not isinstance(supersample, int) or supersample < 1:
            raise DiffcoreError(f"supersample must be a positive int, got {supersample!r}")
        self.cg_steps, self.supersample = cg_steps, supersample
        super().__init__((c, h, w), (c, angles, bins), sigma_y, noise=noise, rate=rate)

    def A(self, x):
        self.check_x(x)
        return F.radon(x, self.cos, self.sin, self.y_shape[-1], self.supersample)

    def A_adjoint(self, y):
        self.check_y(y)
        return F.backproject(y, self.cos, self.sin, *self.x_shape[1:], self.supersample)

    def A_pinv(self, y):
        self.check_y(y)
        return F.conjugate_gradient(lambda z: self.A_adjoint(self.A(z)), self.A_adjoint(y), self.cg_steps)
