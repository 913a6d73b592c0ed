"""JPEG compression (nonlinear; a straight-through gradient by default)."""

from __future__ import annotations

import io

import torch

from diff_inverse.operators._image import image_shape
from diff_inverse.operators.base import Operator
from diffcore.errors import DiffcoreError, ShapeError


class JPEG(Operator):
    """``y = decode(encode_jpeg(x, quality))`` per image, through Pillow.

    ``x`` in [-1, 1] is quantised to 8 bits (values outside are clipped), so ``A`` is neither
    linear nor differentiable. ``gradient="straight-through"`` (the default) passes gradients
    through ``A`` as if it were the identity (``A(x) = x + sg[jpeg(x) - x]``, the backward-pass
    approximation of Athalye et al. 2018, used for JPEG in diffusion solvers since JPEG leaves an
    image close to itself): the solvers that differentiate ``A`` (``dps``, ``red-diff``, ``daps``)
    then take it. ``gradient="none"`` declares ``differentiable = False`` and they refuse it.
    Grayscale (C = 1) or RGB (C = 3).
    """

    def __init__(
        self, x_shape, *, quality: int = 10, gradient: str = "straight-through", sigma_y: float = 0.0, noise: str = "gaussian", rate=None
    ):
        c, h, w = image_shape(x_shape)
        if c not in (1, 3):
            raise ShapeError(f"JPEG takes gray (C=1) or RGB (C=3) images; x_shape is {tuple(x_shape)}")
        if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
            raise DiffcoreError(f"JPEG quality must be an int in [1, 100], got {quality!r}")
        if gradient not in ("straight-through", "none"):
            raise DiffcoreError(f"JPEG gradient must be 'straight-through' or 'none', got {gradient!r}")
        self.quality, self.gradient = quality, gradient
        self.differentiable = gradient != "none"
        super().__init__((c, h, w), (c, h, w), sigma_y, noise=noise, rate=rate)

    def A(self, x):
        out = self.compress(x)
        return x + (out - x).detach() if self.differentiable and x.requires_grad else out

    def compress(self, x):
        """The JPEG round trip of each image (no gradient)."""
        try:
            from PIL import Image
        except ImportError as exc:  # pragma: no cover - pillow comes with torchvision
            raise ImportError("the JPEG operator needs Pillow: pip install pillow") from exc
        self.check_x(x)
        c, h, w = self.x_shape
        pixels = ((x.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        out = []
        for image in pixels:
            array = image[0].numpy() if c == 1 else image.permute(1, 2, 0).contiguous().numpy()
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="JPEG", quality=self.quality)
            buffer.seek(0)
            with Image.open(buffer) as decoded:
                data = torch.frombuffer(bytearray(decoded.tobytes()), dtype=torch.uint8).reshape(h, w, c)
            out.append(data.permute(2, 0, 1))
        return (torch.stack(out).to(device=x.device, dtype=x.dtype) / 127.5 - 1).contiguous()
