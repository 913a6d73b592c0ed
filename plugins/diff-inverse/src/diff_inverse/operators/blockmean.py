"""``BlockMean``: operators that average disjoint blocks of entries (average pooling, colorization)."""

from __future__ import annotations

import math

import torch

from diff_inverse.operators import functional as F
from diff_inverse.operators.base import LinearOperator


class BlockMean(LinearOperator):
    """``y[j] = mean of block j`` for disjoint blocks of ``b`` entries that cover ``x``.

    Subclasses give ``to_blocks(x) -> (N, m, b)`` (block ``j`` in the raster order of ``y``) and
    its inverse ``from_blocks``. On one block the row is ``ones / b = (1 / sqrt(b)) e`` with
    ``e = ones / sqrt(b)``, so the SVD has ``U = I``, singulars ``1 / sqrt(b)`` and ``V``, per
    block, the orthogonal matrix :func:`~diff_inverse.operators.functional.householder_basis`
    whose first column is ``e``. ``Vt`` gives the ``m`` paired coordinates (one per block, in
    the order of ``y``) first, then the ``b - 1`` zero-mean coordinates of each block.
    """

    has_svd = True

    def __init__(self, x_shape, y_shape, block: int, sigma_y: float = 0.0, *, noise: str = "gaussian", rate=None):
        super().__init__(x_shape, y_shape, sigma_y, noise=noise, rate=rate)
        self.block = block
        self.basis = F.householder_basis(block)  # (b, b), built once

    def to_blocks(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def from_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def A(self, x):
        self.check_x(x)
        return self.to_blocks(x).mean(-1).reshape(x.shape[0], *self.y_shape)

    def A_adjoint(self, y):
        self.check_y(y)
        blocks = (y.reshape(y.shape[0], -1, 1) / self.block).expand(-1, -1, self.block)
        return self.from_blocks(blocks)

    def A_pinv(self, y):
        self.check_y(y)
        return self.from_blocks(y.reshape(y.shape[0], -1, 1).expand(-1, -1, self.block))

    def singulars(self):
        return torch.full((math.prod(self.y_shape),), 1 / math.sqrt(self.block), dtype=torch.float64)

    def Vt(self, x):
        self.check_x(x)
        coef = self.to_blocks(x) @ self.basis.to(x)
        return torch.cat([coef[..., 0], coef[..., 1:].reshape(x.shape[0], -1)], 1)

    def V(self, c):
        m = math.prod(self.y_shape)
        coef = torch.cat([c[:, :m, None], c[:, m:].reshape(c.shape[0], m, self.block - 1)], 2)
        return self.from_blocks(coef @ self.basis.to(c).T)

    def Ut(self, y):
        self.check_y(y)
        return y.reshape(y.shape[0], -1)

    def U(self, c):
        return c.reshape(c.shape[0], *self.y_shape)
