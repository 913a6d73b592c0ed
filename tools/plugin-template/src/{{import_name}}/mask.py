"""A coordinate mask: the measurement operator of inpainting, ``y = A x + sigma_y n``.

``A`` keeps the coordinates where ``keep`` is true and flattens them: a sample of shape
``keep.shape`` becomes ``m = keep.sum()`` numbers. Its rows are distinct unit vectors, so
``A A^T = I``: the adjoint scatters ``y`` back into zeros and is also the pseudo-inverse.

>>> mask = CoordinateMask(keep=[True, False, True])
>>> x = torch.tensor([[1.0, 2.0, 3.0]])
>>> mask.A(x)
tensor([[1., 3.]])
>>> mask.A_pinv(mask.A(x))
tensor([[1., 0., 3.]])
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError, ShapeError


class CoordinateMask:
    """Keep the coordinates where keep is true (an example linear operator)

    Args:
        keep: booleans with the shape of one sample, e.g. ``[True, False]`` or a (C, H, W) mask.
        sigma_y: the standard deviation of the measurement noise.
    """

    # What diffcore's Operator protocol asks every operator to say: it is linear (A_adjoint and
    # A_pinv below), has no SVD methods, and autograd goes through A.
    linear = True
    has_svd = False
    differentiable = True

    def __init__(self, keep, sigma_y: float = 0.0):
        keep = torch.as_tensor(keep)
        if keep.dtype != torch.bool:
            raise DiffcoreError(f"keep must hold booleans, got {keep.dtype}")
        if keep.ndim == 0 or not bool(keep.any()):
            raise DiffcoreError("keep must be a mask with the shape of one sample and at least one True")
        if sigma_y < 0:
            raise DiffcoreError(f"sigma_y must be >= 0, got {sigma_y}")
        self.keep = keep
        self.index = keep.flatten().nonzero().flatten()
        self.sigma_y = float(sigma_y)

    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != tuple(self.keep.shape):
            raise ShapeError(f"x has shape {tuple(x.shape)}; expected (N, {', '.join(map(str, self.keep.shape))})")

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return x.flatten(1)[:, self.index.to(x.device)]

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if y.ndim != 2 or y.shape[1] != len(self.index):
            raise ShapeError(f"y has shape {tuple(y.shape)}; expected (N, {len(self.index)})")
        x = y.new_zeros(y.shape[0], self.keep.numel())
        x[:, self.index.to(y.device)] = y
        return x.reshape(y.shape[0], *self.keep.shape)

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint(y)  # A A^T = I
