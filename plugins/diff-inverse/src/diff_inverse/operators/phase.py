"""Phase retrieval: the magnitude of an oversampled Fourier transform (nonlinear)."""

from __future__ import annotations

import torch

from diff_inverse.operators._image import image_shape
from diff_inverse.operators.base import Operator
from diffcore.errors import DiffcoreError


class PhaseRetrieval(Operator):
    """``y = |fft2(pad(x), norm="ortho")|`` with ``x`` zero-padded to ``oversampling`` times its size.

    ``x`` sits at the centre of the padded ``(C, sH, sW)`` canvas (``s = oversampling``, an int
    >= 1). Nonlinear (``linear = False``): no adjoint, pseudo-inverse or SVD, so only DPS-style
    solvers take it. ``y`` is unchanged by a sign flip, a circular shift or a flip of ``x``
    (the problem's trivial ambiguities).
    """

    def __init__(self, x_shape, *, oversampling: int = 2, sigma_y: float = 0.0, noise: str = "gaussian", rate=None):
        c, h, w = image_shape(x_shape)
        if not isinstance(oversampling, int) or isinstance(oversampling, bool) or oversampling < 1:
            raise DiffcoreError(f"oversampling must be an int >= 1, got {oversampling!r}")
        self.oversampling = oversampling
        super().__init__((c, h, w), (c, oversampling * h, oversampling * w), sigma_y, noise=noise, rate=rate)

    def A(self, x):
        self.check_x(x)
        _, h, w = self.x_shape
        ph, pw = self.y_shape[1] - h, self.y_shape[2] - w
        padded = torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return torch.fft.fft2(padded, norm="ortho").abs().to(x.dtype)
