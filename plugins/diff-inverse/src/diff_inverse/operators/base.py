"""The operator contract of diff-inverse.

A measurement is ``y = A(x) + noise``. ``x`` has shape ``(N, *x_shape)`` and ``y`` shape
``(N, *y_shape)``; operators work on any batch size and take device and dtype from their input.

Linear operators derive from :class:`LinearOperator` and give ``A``, ``A_adjoint`` and
``A_pinv``. Where it is cheap they also give their singular value decomposition
``A = U diag(s) V^T`` (DDRM, DDNM, ΠGDM and SNIPS need it) in this convention, per item of the
batch, with ``n = prod(x_shape)``, ``m = prod(y_shape)`` and ``k = len(singulars())``:

- ``Vt(x) -> (N, n)``: coordinates of ``x`` in the orthonormal basis ``V``; the first ``k``
  are the ones paired with the singular values, the rest span the null space;
- ``V(c) -> (N, *x_shape)``: the inverse of ``Vt``;
- ``Ut(y) -> (N, k)`` and ``U(c) -> (N, *y_shape)`` for the measurement side (``U`` has
  orthonormal columns; the ``m - k`` directions it misses are never measured);
- ``singulars() -> (k,)``: the singular values, positive, in the order of the coordinates.

so that ``A(x) == U(singulars() * Vt(x)[:, :k])``. Noise is Gaussian with standard deviation
``sigma_y`` unless an operator says otherwise.

Nonlinear operators (phase retrieval, JPEG) derive from :class:`Operator` only: they give ``A``
and ``measure`` (``linear = False``), no adjoint, pseudo-inverse or SVD, so only DPS-style
solvers take them; ``differentiable = False`` marks an ``A`` that autograd cannot go through.

Noise: ``noise="gaussian"`` (default, standard deviation ``sigma_y``) or ``noise="poisson"`` with
``rate``: the clean measurement, read as an intensity ``(A(x) + 1) / 2`` in [0, 1] (negative
values clamped to 0), becomes ``2 * Poisson(rate * intensity) / rate - 1``; larger ``rate``
means less noise (the photon count at full intensity). It is meant for DPS's Poisson likelihood.
"""

from __future__ import annotations

import math

import torch

from diffcore.errors import DiffcoreError, ShapeError


class Operator:
    """Shapes, noise and ``measure`` shared by every operator, linear or not."""

    linear = False
    has_svd = False
    differentiable = True

    def __init__(
        self,
        x_shape: tuple[int, ...],
        y_shape: tuple[int, ...],
        sigma_y: float = 0.0,
        *,
        noise: str = "gaussian",
        rate: float | None = None,
    ):
        if not isinstance(sigma_y, (int, float)) or sigma_y < 0 or not math.isfinite(sigma_y):
            raise DiffcoreError(f"sigma_y must be a finite number >= 0, got {sigma_y!r}")
        if noise not in ("gaussian", "poisson"):
            raise DiffcoreError(f"noise must be 'gaussian' or 'poisson', got {noise!r}")
        if noise == "poisson" and (not isinstance(rate, (int, float)) or not rate > 0 or not math.isfinite(rate)):
            raise DiffcoreError(f"noise='poisson' needs a finite rate > 0 (photon count at full intensity), got rate={rate!r}")
        self.x_shape, self.y_shape, self.sigma_y = tuple(x_shape), tuple(y_shape), float(sigma_y)
        self.noise, self.rate = noise, (float(rate) if rate is not None else None)

    # -- shapes --------------------------------------------------------------------------------
    def check_x(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.x_shape:
            raise ShapeError(f"x has shape {tuple(x.shape)}; expected (N, {', '.join(map(str, self.x_shape))}) for {type(self).__name__}")

    def check_y(self, y: torch.Tensor) -> None:
        if tuple(y.shape[1:]) != self.y_shape:
            raise ShapeError(f"y has shape {tuple(y.shape)}; expected (N, {', '.join(map(str, self.y_shape))}) for {type(self).__name__}")

    # -- measurement ---------------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement A")

    def measure(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``A(x)`` plus noise: Gaussian of standard deviation ``sigma_y``, or Poisson (see the module docstring)."""
        y = self.A(x)
        device = generator.device if generator is not None else y.device
        if self.noise == "poisson":
            intensity = ((y + 1) / 2).clamp_min(0) * self.rate
            counts = torch.poisson(intensity.to(device), generator=generator).to(y.device)
            return 2 * counts / self.rate - 1
        if self.sigma_y > 0:
            y = y + self.sigma_y * torch.randn(y.shape, generator=generator, device=device, dtype=y.dtype).to(y.device)
        return y


class LinearOperator(Operator):
    """Base class: shape checks, noise, and SVD-derived defaults for ``A``, ``A_adjoint`` and ``A_pinv``."""

    linear = True
    has_svd = False

    # -- defaults from the SVD -------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._need_svd("A")
        k = self.singulars().numel()
        return self.U(self.singulars().to(x) * self.Vt(x)[:, :k])

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._need_svd("A_adjoint")
        c = self.singulars().to(y) * self.Ut(y)
        return self.V(self._pad(c))

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        self._need_svd("A_pinv")
        s = self.singulars().to(y)
        return self.V(self._pad(self.Ut(y) / s))

    def _pad(self, c: torch.Tensor) -> torch.Tensor:
        n = math.prod(self.x_shape)
        return torch.cat([c, c.new_zeros(c.shape[0], n - c.shape[1])], 1) if c.shape[1] < n else c

    def _need_svd(self, what: str):
        if not self.has_svd:
            raise NotImplementedError(f"{type(self).__name__} must implement {what} (it has no SVD)")

    def _no_svd(self, *args) -> torch.Tensor:
        raise DiffcoreError(f"{type(self).__name__} has no SVD; solvers that need one (ddrm, ddnm, pigdm, snips) cannot use it")

    singulars = V = Vt = U = Ut = _no_svd
