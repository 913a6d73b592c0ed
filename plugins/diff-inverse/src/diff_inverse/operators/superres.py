"""Super-resolution: average pooling and antialiased bicubic downsampling by an integer factor."""

from __future__ import annotations

from diff_inverse.operators import functional as F
from diff_inverse.operators._image import image_shape
from diff_inverse.operators.blockmean import BlockMean
from diff_inverse.operators.separable import Separable
from diffcore.errors import DiffcoreError, ShapeError


def _check_factor(factor, h: int, w: int) -> int:
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise DiffcoreError(f"factor must be a positive int, got {factor!r}")
    if h % factor or w % factor:
        raise ShapeError(f"factor {factor} does not divide the image size {h}x{w}")
    return factor


class AveragePooling(BlockMean):
    """``y = `` the mean of each ``factor x factor`` block, per channel: ``(C, H/f, W/f)``.

    SVD of :class:`BlockMean` with blocks of ``f^2`` pixels: singulars ``1 / f``.

    >>> import torch
    >>> op = AveragePooling((1, 4, 4), factor=2)
    >>> op.A(torch.arange(16.0).reshape(1, 1, 4, 4)).flatten().tolist()
    [2.5, 4.5, 10.5, 12.5]
    """

    def __init__(self, x_shape, *, factor: int = 4, sigma_y: float = 0.0, noise: str = "gaussian", rate=None):
        c, h, w = image_shape(x_shape)
        self.factor = _check_factor(factor, h, w)
        super().__init__((c, h, w), (c, h // factor, w // factor), factor * factor, sigma_y, noise=noise, rate=rate)

    def to_blocks(self, x):
        n, c, h, w = x.shape
        f = self.factor
        return x.reshape(n, c, h // f, f, w // f, f).permute(0, 1, 2, 4, 3, 5).reshape(n, c * (h // f) * (w // f), f * f)

    def from_blocks(self, blocks):
        c, h, w = self.x_shape
        f, n = self.factor, blocks.shape[0]
        return blocks.reshape(n, c, h // f, w // f, f, f).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


class Bicubic(Separable):
    """Antialiased bicubic downsampling by ``factor`` (the weights of torch's and PIL's resize).

    Separable (``A_h``, ``A_w`` of size ``(H/f, H)`` and ``(W/f, W)`` built once, see
    :func:`~diff_inverse.operators.functional.bicubic_matrix_1d`); the SVD comes from the two
    1-D SVDs (:class:`Separable`): ``k = C (H/f) (W/f)`` paired coordinates first.
    """

    def __init__(self, x_shape, *, factor: int = 4, sigma_y: float = 0.0, noise: str = "gaussian", rate=None):
        c, h, w = image_shape(x_shape)
        self.factor = _check_factor(factor, h, w)
        super().__init__((c, h, w), F.bicubic_matrix_1d(h, factor), F.bicubic_matrix_1d(w, factor), sigma_y, noise=noise, rate=rate)


def super_resolution(x_shape, *, factor: int = 4, mode: str = "average", sigma_y: float = 0.0, noise: str = "gaussian", rate=None):
    """Super-resolution by an integer ``factor``: ``mode="average"`` (pooling) or ``"bicubic"``."""
    if mode in ("average", "pool", "avg"):
        return AveragePooling(x_shape, factor=factor, sigma_y=sigma_y, noise=noise, rate=rate)
    if mode == "bicubic":
        return Bicubic(x_shape, factor=factor, sigma_y=sigma_y, noise=noise, rate=rate)
    raise DiffcoreError(f"unknown super-resolution mode {mode!r}; use 'average' or 'bicubic'")
