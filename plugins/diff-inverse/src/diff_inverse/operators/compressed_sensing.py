"""Compressed sensing with random orthogonal rows."""

from __future__ import annotations

import torch

from diff_inverse.operators import functional as F
from diff_inverse.operators._image import image_shape
from diff_inverse.operators.base import LinearOperator
from diffcore.errors import DiffcoreError


class CompressedSensing(LinearOperator):
    """``y = (Q x)[S]``: ``m = round(ratio * n)`` random rows of an ``n x n`` orthogonal ``Q``.

    ``Q = Q_C (x) Q_H (x) Q_W`` is a Kronecker product of three Haar-random orthogonal matrices
    (drawn from ``seed``), applied factor by factor, so the ``n x n`` matrix is never formed;
    ``S`` is a random subset of its rows. Its rows are orthonormal, so the SVD is trivial:
    singulars all 1, ``U = I`` on ``y`` (shape ``(m,)``), ``Vt(x) = (Q x)[P]`` with ``P`` a
    permutation that starts with ``S``. (A Kronecker-structured orthogonal matrix, not a Haar
    ``n x n`` one: that one would be dense.)

    >>> op = CompressedSensing((1, 8, 8), ratio=0.25)
    >>> op.y_shape, op.singulars().numel()
    ((16,), 16)
    """

    has_svd = True

    def __init__(self, x_shape, *, ratio: float = 0.25, seed: int = 0, sigma_y: float = 0.0, noise: str = "gaussian", rate=None):
        c, h, w = image_shape(x_shape)
        n = c * h * w
        if not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise DiffcoreError(f"ratio (measurements per unknown) must be in (0, 1], got {ratio!r}")
        m = max(1, round(ratio * n))
        super().__init__((c, h, w), (m,), sigma_y, noise=noise, rate=rate)
        g = torch.Generator().manual_seed(int(seed))
        self.q_c, self.q_h, self.q_w = (F.haar_orthogonal(d, g) for d in (c, h, w))
        self.order = torch.randperm(n, generator=g)
        self.inverse_order = torch.argsort(self.order)

    def _transform(self, x, transpose: bool = False):
        qc, qh, qw = (q.to(dtype=x.dtype, device=x.device) for q in (self.q_c, self.q_h, self.q_w))
        if transpose:
            qc, qh, qw = qc.T, qh.T, qw.T
        x = torch.einsum("ac,nchw->nahw", qc, x)  # one factor at a time: never an n x n product
        return qh @ x @ qw.T

    def singulars(self):
        return torch.ones(self.y_shape[0], dtype=torch.float64)

    def A(self, x):
        return self.Vt(x)[:, : self.y_shape[0]]

    def A_adjoint(self, y):
        self.check_y(y)
        return self.V(self._pad(y))

    A_pinv = A_adjoint

    def Vt(self, x):
        self.check_x(x)
        return self._transform(x).reshape(x.shape[0], -1)[:, self.order.to(x.device)]

    def V(self, c):
        z = c[:, self.inverse_order.to(c.device)].reshape(c.shape[0], *self.x_shape)
        return self._transform(z, transpose=True)

    def Ut(self, y):
        self.check_y(y)
        return y.clone()

    def U(self, c):
        return c.clone()
