"""What the video measurement operators share: shapes, Gaussian noise, and the linear algebra of a selection.

Every operator follows diffcore's operator contract (:class:`diffcore.protocols.SVDOperator`):
``x`` is a batch of videos ``(N, F, C, H, W)`` of ``x_shape``, ``y`` a batch of ``y_shape``,
``measure(x, generator) = A(x) + sigma_y * noise``, and ``A``, ``A_adjoint``, ``A_pinv`` and the
SVD (``V``, ``Vt``, ``U``, ``Ut``, ``singulars``) are given, so that diff-inverse's solvers (and
any other that reads the contract) run on them through the registry. Device and dtype follow the
input.
"""

from __future__ import annotations

import math

import torch

from diffcore.errors import DiffcoreError, ShapeError


def video_shape(x_shape) -> tuple[int, int, int, int]:
    """``x_shape`` checked as a video shape (F, C, H, W) of positive sizes."""
    shape = tuple(int(s) for s in x_shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ShapeError(f"a video operator takes x_shape (F, C, H, W), got {tuple(x_shape)}")
    return shape


class VideoOperator:
    """Shapes, ``sigma_y`` and ``measure`` of a linear video operator with an SVD."""

    linear = True
    has_svd = True
    differentiable = True

    def __init__(self, x_shape, y_shape, sigma_y: float = 0.0):
        if not isinstance(sigma_y, int | float) or isinstance(sigma_y, bool) or not math.isfinite(sigma_y) or sigma_y < 0:
            raise DiffcoreError(f"sigma_y must be a finite number >= 0, got {sigma_y!r}")
        self.x_shape, self.y_shape, self.sigma_y = tuple(x_shape), tuple(y_shape), float(sigma_y)

    def check_x(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != self.x_shape:
            raise ShapeError(
                f"x has shape {tuple(getattr(x, 'shape', ()))}; expected (N, {', '.join(map(str, self.x_shape))}) for {type(self).__name__}"
            )

    def check_y(self, y: torch.Tensor) -> None:
        if not isinstance(y, torch.Tensor) or tuple(y.shape[1:]) != self.y_shape:
            raise ShapeError(
                f"y has shape {tuple(getattr(y, 'shape', ()))}; expected (N, {', '.join(map(str, self.y_shape))}) for {type(self).__name__}"
            )

    def measure(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``A(x)`` plus Gaussian noise of standard deviation ``sigma_y`` drawn from ``generator``."""
        y = self.A(x)
        if self.sigma_y > 0:
            device = generator.device if generator is not None else y.device
            y = y + self.sigma_y * torch.randn(y.shape, generator=generator, device=device, dtype=y.dtype).to(y.device)
        return y


class Selection(VideoOperator):
    """A measurement that keeps some entries of x: ``keep`` is a boolean tensor of ``x_shape``.

    Singulars are all 1; ``Vt`` lists the kept entries first (in raster order), then the others.
    Subclasses say how the kept entries are laid out in ``y``: ``U(c)`` puts the ``k`` kept values
    (N, k) into y and ``Ut(y)`` reads them back.
    """

    def __init__(self, x_shape, y_shape, keep: torch.Tensor, sigma_y: float = 0.0):
        super().__init__(x_shape, y_shape, sigma_y)
        keep = keep.reshape(-1).bool()
        if not bool(keep.any()):
            raise DiffcoreError(f"{type(self).__name__} measures nothing: every entry is left out")
        self.keep = keep
        self.order = torch.cat([keep.nonzero().flatten(), (~keep).nonzero().flatten()])
        self.inverse = torch.argsort(self.order)

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """The kept entries (N, k) put back in flat x (N, n), zeros elsewhere."""
        out = values.new_zeros(values.shape[0], self.keep.numel())
        out[:, self.keep.to(values.device)] = values
        return out

    def singulars(self) -> torch.Tensor:
        return torch.ones(int(self.keep.sum()), dtype=torch.float64)

    def Vt(self, x):
        self.check_x(x)
        return x.reshape(x.shape[0], -1)[:, self.order.to(x.device)]

    def V(self, c):
        return c[:, self.inverse.to(c.device)].reshape(c.shape[0], *self.x_shape)

    def A(self, x):
        self.check_x(x)
        return self.U(x.reshape(x.shape[0], -1)[:, self.keep.to(x.device)])

    def A_adjoint(self, y):
        return self.scatter(self.Ut(y)).reshape(y.shape[0], *self.x_shape)

    A_pinv = A_adjoint  # a selection's adjoint is its pseudo-inverse
