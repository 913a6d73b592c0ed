"""``Separable``: ``Y_c = A_h X_c A_w^T`` per channel, with the SVD from the two 1-D SVDs."""

from __future__ import annotations

import torch

from diff_inverse.operators.base import LinearOperator


class Separable(LinearOperator):
    """A separable linear map of each channel, ``Y_c = A_h X_c A_w^T`` (``A = A_h (x) A_w``).

    With ``A_h = U_h S_h V_h^T`` and ``A_w = U_w S_w V_w^T`` (full ``V``), the coefficients
    ``Z_c = V_h^T X_c V_w`` are the coordinates in ``V``; entry ``(i, j)`` with ``i < h``,
    ``j < w`` is paired with the singular value ``S_h[i] S_w[j]`` (the singulars are outer
    products), every other entry spans the null space. Products at or below ``rcond`` times
    the largest are treated as zero: the operator *is* the truncated map (``A`` is applied
    through the SVD), which differs from ``A_h X A_w^T`` by at most ``rcond`` in relative
    operator norm. ``Vt`` lists the kept paired entries first (channel, then row, then
    column), then the rest in the same order. Only the 1-D matrices and index vectors of
    length ``C H W`` are stored.
    """

    has_svd = True

    def __init__(
        self,
        x_shape,
        matrix_h: torch.Tensor,
        matrix_w: torch.Tensor,
        sigma_y: float = 0.0,
        *,
        rcond: float = 1e-10,
        noise: str = "gaussian",
        rate=None,
    ):
        c, H, W = x_shape
        h, w = matrix_h.shape[0], matrix_w.shape[0]
        super().__init__((c, H, W), (c, h, w), sigma_y, noise=noise, rate=rate)
        self.matrix_h, self.matrix_w = matrix_h.to(torch.float64), matrix_w.to(torch.float64)
        uh, sh, vh = torch.linalg.svd(self.matrix_h, full_matrices=True)
        uw, sw, vw = torch.linalg.svd(self.matrix_w, full_matrices=True)
        self.u_h, self.u_w, self.v_h, self.v_w = uh[:, : sh.numel()], uw[:, : sw.numel()], vh.T, vw.T
        products = torch.outer(sh, sw)  # (r_h, r_w) with r_h = min(h, H)
        keep = products > rcond * products.max()
        paired = torch.zeros(c, H, W, dtype=torch.bool)
        paired[:, : sh.numel(), : sw.numel()] = keep
        flat = paired.reshape(-1)
        self.order = torch.cat([flat.nonzero().squeeze(1), (~flat).nonzero().squeeze(1)])
        self.inverse_order = torch.argsort(self.order)
        self._singulars = products[keep].repeat(c)
        self.y_index = keep.expand(c, -1, -1).reshape(-1).nonzero().squeeze(1)  # paired coordinates -> entries of U_h^T Y U_w

    def _m(self, t, like):
        return t.to(dtype=like.dtype, device=like.device)

    def singulars(self):
        return self._singulars

    def Vt(self, x):
        self.check_x(x)
        z = self._m(self.v_h, x).T @ x @ self._m(self.v_w, x)
        return z.reshape(x.shape[0], -1)[:, self.order.to(x.device)]

    def V(self, c):
        z = c[:, self.inverse_order.to(c.device)].reshape(c.shape[0], *self.x_shape)
        return self._m(self.v_h, c) @ z @ self._m(self.v_w, c).T

    def Ut(self, y):
        self.check_y(y)
        z = self._m(self.u_h, y).T @ y @ self._m(self.u_w, y)
        return z.reshape(y.shape[0], -1)[:, self.y_index.to(y.device)]

    def U(self, c):
        rh, rw = self.u_h.shape[1], self.u_w.shape[1]
        full = c.new_zeros(c.shape[0], self.x_shape[0] * rh * rw)
        full[:, self.y_index.to(c.device)] = c
        z = full.reshape(c.shape[0], self.x_shape[0], rh, rw)
        return self._m(self.u_h, c) @ z @ self._m(self.u_w, c).T

    def apply_direct(self, x: torch.Tensor) -> torch.Tensor:
        """``A_h X A_w^T`` without truncation (for comparison with the SVD path)."""
        self.check_x(x)
        return self._m(self.matrix_h, x) @ x @ self._m(self.matrix_w, x).T
