"""``DenseLinear``: any matrix as an operator, its SVD taken once."""

from __future__ import annotations

import torch

from diff_inverse.operators.base import LinearOperator
from diffcore.errors import ShapeError


class DenseLinear(LinearOperator):
    """``y = matrix @ x.flatten()``, for small problems (the Gaussian-mixture benchmark).

    ``x_shape`` defaults to ``(matrix.shape[1],)``. Singular values at or below
    ``rcond * max(s)`` are treated as zero (null space). ``noise`` and ``rate`` as every operator's
    (:mod:`diff_inverse.operators.base`).

    >>> import torch
    >>> op = DenseLinear(torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), sigma_y=0.1)
    >>> op.singulars().tolist(), tuple(op.A(torch.ones(4, 3)).shape)
    ([2.0, 1.0], (4, 2))
    """

    has_svd = True

    def __init__(
        self,
        matrix,
        sigma_y: float = 0.0,
        x_shape: tuple[int, ...] | None = None,
        rcond: float = 1e-10,
        *,
        noise: str = "gaussian",
        rate=None,
    ):
        matrix = torch.as_tensor(matrix, dtype=torch.float64)
        if matrix.ndim != 2:
            raise ShapeError(f"matrix has shape {tuple(matrix.shape)}; expected (m, n)")
        m, n = matrix.shape
        x_shape = tuple(x_shape) if x_shape is not None else (n,)
        if torch.Size(x_shape).numel() != n:
            raise ShapeError(f"x_shape {x_shape} has {torch.Size(x_shape).numel()} elements; the matrix has {n} columns")
        super().__init__(x_shape, (m,), sigma_y, noise=noise, rate=rate)
        self.matrix = matrix
        few_rows = 4 * m <= n  # V through Householder reflections; otherwise the full (n, n) V
        U, s, Vh = torch.linalg.svd(matrix, full_matrices=not few_rows)
        k = int((s > rcond * s.max()).sum()) if s.numel() else 0
        self._U, self._s = U[:, :k], s[:k]
        if few_rows and k > 0:
            # V = Q D from the QR of V_k (k Householder reflections, applied in O(n k) per vector
            # instead of O(n^2)); D fixes the signs so that V's first k columns are V_k
            a, tau = torch.geqrf(Vh[:k].T.contiguous())
            signs = torch.ones(n, dtype=torch.float64)
            signs[:k] = torch.sign(torch.diagonal(a)[:k])
            self._V, self._householder = None, (a, tau, signs)
        else:
            if few_rows:  # k == 0: a zero matrix, any orthonormal basis
                Vh = torch.eye(n, dtype=torch.float64)
            self._V, self._householder = Vh.T, None  # (n, n), first k columns paired with s

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
        flat = x.reshape(x.shape[0], -1)
        if self._householder is None:
            return flat @ self._m(self._V, x)
        a, tau, signs = (self._m(t, x) for t in self._householder)
        return torch.ormqr(a, tau, flat.T, left=True, transpose=True).T * signs

    def V(self, c):
        if self._householder is None:
            return (c @ self._m(self._V, c).T).reshape(c.shape[0], *self.x_shape)
        a, tau, signs = (self._m(t, c) for t in self._householder)
        return torch.ormqr(a, tau, (c * signs).T, left=True, transpose=False).T.reshape(c.shape[0], *self.x_shape)

    def Ut(self, y):
        return y @ self._m(self._U, y)

    def U(self, c):
        return c @ self._m(self._U, c).T
