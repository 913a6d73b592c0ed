"""Inpainting (keep the observed pixels) and denoising (the identity)."""

from __future__ import annotations

import math

import torch

from diff_inverse.operators import functional as F
from diff_inverse.operators._image import image_shape
from diff_inverse.operators.base import LinearOperator
from diffcore.errors import DiffcoreError, ShapeError


class Inpainting(LinearOperator):
    """``y = mask * x``: the observed pixels, zeros elsewhere (``y`` has the shape of ``x``).

    The mask is, one of: ``box=(top, left, height, width)`` (that region missing),
    ``fraction`` (share of pixels removed at random, drawn with ``seed``), ``mask`` (a tensor of
    shape ``(H, W)``, ``(1, H, W)`` or ``(C, H, W)``, nonzero where observed, or the path of a
    mask image: white (> 50%) observed). A pixel mask applies to every channel.

    SVD: a selection, so singulars are all 1; ``Vt`` lists the observed entries first (in
    raster order of ``(C, H, W)``), then the missing ones; ``U`` puts ``k`` values back on the
    observed entries.

    >>> op = Inpainting((1, 4, 4), box=(0, 0, 2, 4))
    >>> op.singulars().numel(), float(op.A(torch.ones(1, 1, 4, 4)).sum())
    (8, 8.0)
    """

    has_svd = True

    def __init__(
        self, x_shape, *, box=None, fraction=None, seed: int = 0, mask=None, sigma_y: float = 0.0, noise: str = "gaussian", rate=None
    ):
        c, h, w = image_shape(x_shape)
        given = [name for name, value in (("box", box), ("fraction", fraction), ("mask", mask)) if value is not None]
        if len(given) != 1:
            raise DiffcoreError(f"inpainting needs exactly one of box, fraction or mask; got {given or 'none'}")
        if box is not None:
            m = F.box_mask(h, w, tuple(box))
        elif fraction is not None:
            m = F.random_pixel_mask(h, w, fraction, seed)
        else:
            m = (
                F.read_gray_image(mask) > 0.5
                if isinstance(mask, (str, bytes)) or hasattr(mask, "__fspath__")
                else torch.as_tensor(mask) != 0
            )
        m = m.cpu()
        if m.ndim == 2:
            m = m[None]
        if m.ndim != 3 or tuple(m.shape[1:]) != (h, w) or m.shape[0] not in (1, c):
            raise ShapeError(
                f"mask has shape {tuple(m.shape)}; expected ({h}, {w}) or ({c}, {h}, {w}) to match the image (resize the mask or the image)"
            )
        m = m.expand(c, h, w).contiguous()
        if not m.any():
            raise DiffcoreError("the inpainting mask observes no pixel")
        super().__init__((c, h, w), (c, h, w), sigma_y, noise=noise, rate=rate)
        self.mask = m
        flat = m.reshape(-1)
        self.observed = flat.nonzero().squeeze(1)
        self.order = torch.cat([self.observed, (~flat).nonzero().squeeze(1)])  # V's coordinates -> entries
        self.inverse_order = torch.argsort(self.order)

    def A(self, x):
        self.check_x(x)
        return x * self.mask.to(x.device)

    def A_adjoint(self, y):
        self.check_y(y)
        return y * self.mask.to(y.device)

    def A_pinv(self, y):
        return self.A_adjoint(y)

    def measure(self, x, generator=None):
        """Noisy observed pixels; the missing ones stay exactly 0."""
        return super().measure(x, generator) * self.mask.to(x.device)

    def singulars(self):
        return torch.ones(self.observed.numel(), dtype=torch.float64)

    def Vt(self, x):
        self.check_x(x)
        return x.reshape(x.shape[0], -1)[:, self.order.to(x.device)]

    def V(self, c):
        return c[:, self.inverse_order.to(c.device)].reshape(c.shape[0], *self.x_shape)

    def Ut(self, y):
        self.check_y(y)
        return y.reshape(y.shape[0], -1)[:, self.observed.to(y.device)]

    def U(self, c):
        out = c.new_zeros(c.shape[0], math.prod(self.y_shape))
        out[:, self.observed.to(c.device)] = c
        return out.reshape(c.shape[0], *self.y_shape)


class Denoising(LinearOperator):
    """``y = x``: the identity, for denoising (``sigma_y`` is the noise level).

    >>> Denoising((3, 8, 8), sigma_y=0.1).singulars().numel()
    192
    """

    has_svd = True

    def __init__(self, x_shape, *, sigma_y: float = 0.0, noise: str = "gaussian", rate=None):
        shape = image_shape(x_shape)
        super().__init__(shape, shape, sigma_y, noise=noise, rate=rate)

    def A(self, x):
        self.check_x(x)
        return x.clone()

    def A_adjoint(self, y):
        self.check_y(y)
        return y.clone()

    A_pinv = A_adjoint

    def singulars(self):
        return torch.ones(math.prod(self.x_shape), dtype=torch.float64)

    def Vt(self, x):
        self.check_x(x)
        return x.reshape(x.shape[0], -1).clone()

    def V(self, c):
        return c.reshape(c.shape[0], *self.x_shape).clone()

    Ut = Vt
    U = V
