"""Colorization: the gray image is the mean over the colour channels."""

from __future__ import annotations

from diff_inverse.operators._image import image_shape
from diff_inverse.operators.blockmean import BlockMean
from diffcore.errors import ShapeError


class Colorization(BlockMean):
    """``y = mean over channels``: ``(C, H, W) -> (1, H, W)``.

    SVD of :class:`~diff_inverse.operators.blockmean.BlockMean` with one block per pixel (its
    ``C`` channel values): per pixel ``V`` starts with ``(1, ..., 1) / sqrt(C)`` and the
    singular value is ``1 / sqrt(C)`` (``1 / sqrt(3)`` for RGB: the mean is
    ``<x, e> / sqrt(3)``); ``U = I``.

    >>> import torch
    >>> Colorization((3, 2, 2)).A(torch.ones(1, 3, 2, 2) * 0.5).flatten().tolist()
    [0.5, 0.5, 0.5, 0.5]
    """

    def __init__(self, x_shape, *, sigma_y: float = 0.0, noise: str = "gaussian", rate=None):
        c, h, w = image_shape(x_shape)
        if c < 2:
            raise ShapeError(f"colorization needs a colour image (C >= 2, usually 3); x_shape is {tuple(x_shape)}")
        super().__init__((c, h, w), (1, h, w), c, sigma_y, noise=noise, rate=rate)

    def to_blocks(self, x):
        n, c, h, w = x.shape
        return x.permute(0, 2, 3, 1).reshape(n, h * w, c)

    def from_blocks(self, blocks):
        c, h, w = self.x_shape
        return blocks.reshape(blocks.shape[0], h, w, c).permute(0, 3, 1, 2)
