"""Per-frame super-resolution: ``y`` is every frame average-pooled by ``factor`` (spatial upsampling of a video).

The SVD, per block of ``b = factor^2`` pixels: the row ``ones / b`` is ``(1 / sqrt(b)) u`` with
``u = ones / sqrt(b)``, so ``U = I``, singulars ``1 / factor`` and ``V`` the Householder
reflection that maps the first axis onto ``u`` (orthogonal and symmetric, first column ``u``).
``Vt`` gives the block coordinates along ``u`` first (in the order of ``y``), then the zero-mean ones.

>>> import torch
>>> op = FrameSuperResolution((1, 1, 4, 4), factor=2)
>>> op.A(torch.arange(16.0).reshape(1, 1, 1, 4, 4)).flatten().tolist()
[2.5, 4.5, 10.5, 12.5]
"""

from __future__ import annotations

import math

import torch

from diff_video.operators.base import VideoOperator, video_shape
from diffcore.errors import DiffcoreError, ShapeError


def householder_basis(b: int) -> torch.Tensor:
    """The symmetric orthogonal (b, b) matrix whose first column is ``ones / sqrt(b)`` (float64)."""
    u = torch.full((b,), 1 / math.sqrt(b), dtype=torch.float64)
    v = u.clone()
    v[0] -= 1.0
    if float(v.norm()) < 1e-12:
        return torch.eye(b, dtype=torch.float64)
    v = v / v.norm()
    return torch.eye(b, dtype=torch.float64) - 2 * torch.outer(v, v)


class FrameSuperResolution(VideoOperator):
    """``y[:, f] = avg_pool(x[:, f], factor)``: ``y_shape = (F, C, H / factor, W / factor)``."""

    def __init__(self, x_shape, *, factor: int = 2, sigma_y: float = 0.0):
        f, c, h, w = video_shape(x_shape)
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
            raise DiffcoreError(f"factor must be a positive whole number, got {factor!r}")
        if h % factor or w % factor:
            raise ShapeError(f"factor {factor} does not divide the frame size {h}x{w}")
        self.factor = factor
        self.block = factor * factor
        self.basis = householder_basis(self.block)
        super().__init__((f, c, h, w), (f, c, h // factor, w // factor), sigma_y)

    def to_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F, C, H, W) -> (N, m, b): the pixel blocks of every frame, in the raster order of y."""
        n, (f, c, h, w), k = x.shape[0], self.x_shape, self.factor
        return x.reshape(n, f, c, h // k, k, w // k, k).permute(0, 1, 2, 3, 5, 4, 6).reshape(n, -1, self.block)

    def from_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        n, (f, c, h, w), k = blocks.shape[0], self.x_shape, self.factor
        return blocks.reshape(n, f, c, h // k, w // k, k, k).permute(0, 1, 2, 3, 5, 4, 6).reshape(n, f, c, h, w)

    def A(self, x):
        self.check_x(x)
        return self.to_blocks(x).mean(-1).reshape(x.shape[0], *self.y_shape)

    def A_adjoint(self, y):
        self.check_y(y)
        return self.from_blocks((y.reshape(y.shape[0], -1, 1) / self.block).expand(-1, -1, self.block))

    def A_pinv(self, y):
        self.check_y(y)
        return self.from_blocks(y.reshape(y.shape[0], -1, 1).expand(-1, -1, self.block))

    def singulars(self):
        return torch.full((math.prod(self.y_shape),), 1 / self.factor, dtype=torch.float64)

    def Vt(self, x):
        self.check_x(x)
        coef = self.to_blocks(x) @ self.basis.to(x)
        return torch.cat([coef[..., 0], coef[..., 1:].reshape(x.shape[0], -1)], 1)

    def V(self, c):
        m = math.prod(self.y_shape)
        coef = torch.cat([c[:, :m, None], c[:, m:].reshape(c.shape[0], m, self.block - 1)], 2)
        return self.from_blocks(coef @ self.basis.to(c).T)

    def U(self, c):
        return c.reshape(c.shape[0], *self.y_shape)

    def Ut(self, y):
        self.check_y(y)
        return y.reshape(y.shape[0], -1)

    def __repr__(self) -> str:
        return f"FrameSuperResolution(x_shape={self.x_shape}, factor={self.factor}, sigma_y={self.sigma_y})"
