"""``DenseLinear``: any matrix as an operator, its SVD taken once."""

from __future__ import annotations

import torch

from diff_inverse.operators.base import LinearOperator
from diffcore.errors import ShapeError


class DenseLinear(LinearOperator):
    """``y = matrix @ x.flatten()``, for small problems (the Gaussian-mixture benchmark).

    ``x_shape`` defaults to ``(matrix.shape[1],)``. Singular values at or below
    ``rcond * max(s)`` are treated as zero (null space).

    >>> import torch
    >>> op = DenseLinear(torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), sigma_y=0.1)
    >>> op.singulars().tolist(), tuple(op.A(torch.ones(4, 3)).shape)
    ([2.0, 1.0], (4, 2))
    """

    has_svd = True

    def __init__(self, matrix, sigma_y: float = 0.0, x_shape: tuple[int, ...] | None = None, rcond: float = 1e-10):
        matrix = torch.as_tensor(matrix, dtype=torch.float64)
        if matrix.ndim != 2:
            raise ShapeError(f"matrix has shape {tuple(matrix.shape)}; expected (m, n)")
        m, n = matrix.shape
        x_shape = tuple(x_shape) if x_shape is not None else (n,)
        if torch.Size(x_shape).numel() != n:
            raise ShapeError(f"x_shape {x_shape} has {torch.Size(x_shape).numel()} elements; the matrix has {n} columns")
        super().__init__(x_shape, (m,), sigma_y)
        self.matrix = matrix
        U, s, Vh = torch.linalg.svd(matrix, full_matrices=True)
        k = int((s > rcond * s.max()).sum()) if s.numel() else 0
        self._U, self._s, self._V = U[:, :k], s[:k], Vh.T  # V: (n, n), first k columns paired with s

    def _m(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return t.to(dtype=like.dtype, device=like.device)

    def A(self, x):
        self.check_x(x)
        return x.reshape(x.shape[0], -1) @ self._m(self.matrix, x).T

    def A_adjoint(self, y):
        self.check_y(y)
        return (y @ self._m(self.matrix, y)).reshape(y.shape[0], *self.x_shape)

    def singulars(self):
        return self._s

    def Vt(self, x):
        return x.reshape(x.shape[0], -1) @ self._m(self._V, x)

    def V(self, c):
        return (c @ self._m(self._V, c).T).reshape(c.shape[0], *self.x_shape)

    def Ut(self, y):
        return y @ self._m(self._U, y)

    def U(self, c):
        return c @ self._m(self._U, c).T
