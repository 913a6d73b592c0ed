"""Classical reconstructions the solvers are compared with.

- ``pinv``: the operator's pseudo-inverse ``A_pinv(y)`` (linear operators); for average-pooling
  super-resolution that is pixel replication;
- ``bicubic`` and ``lanczos``: for super-resolution by an integer factor, ``y`` upsampled to the
  image's size by Pillow's bicubic and Lanczos (a = 3) filters, per channel in 32-bit floats (no
  rounding to 8 bits), what users compare super-resolution with.

>>> from diff_inverse.operators import super_resolution
>>> op = super_resolution((1, 8, 8), factor=2)
>>> sorted(baselines(op, torch.zeros(1, 1, 4, 4)))
['bicubic', 'lanczos', 'pinv']
"""

from __future__ import annotations

import numpy as np
import torch

from diffcore.errors import DiffcoreError

NAMES = ("pinv", "bicubic", "lanczos")


def pseudo_inverse(operator, y: torch.Tensor) -> torch.Tensor | None:
    """``A_pinv(y)`` for a linear operator that has one, else None."""
    if not getattr(operator, "linear", False):
        return None
    try:
        return operator.A_pinv(y).detach()
    except (NotImplementedError, DiffcoreError):  # a linear operator without a pseudo-inverse
        return None


def super_resolution_factor(operator) -> int | None:
    """The integer factor of a super-resolution operator (average pooling or bicubic downsampling), else None."""
    from diff_inverse.operators import AveragePooling, Bicubic

    return int(operator.factor) if isinstance(operator, (AveragePooling, Bicubic)) else None


def upsample(y: torch.Tensor, size: tuple[int, int], method: str) -> torch.Tensor:
    """``y`` (N, C, h, w) resized to ``size = (H, W)`` with Pillow's ``bicubic`` or ``lanczos`` filter, in float32."""
    from PIL import Image

    filters = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
    if method not in filters:
        raise DiffcoreError(f"upsampling method must be one of {', '.join(filters)}, got {method!r}")
    h, w = size
    data = y.detach().to("cpu", torch.float32).numpy()
    out = np.empty((*data.shape[:2], h, w), dtype=np.float32)
    for i in range(data.shape[0]):
        for c in range(data.shape[1]):
            out[i, c] = np.asarray(Image.fromarray(np.ascontiguousarray(data[i, c]), mode="F").resize((w, h), filters[method]))
    return torch.from_numpy(out).to(device=y.device, dtype=y.dtype)


def baselines(operator, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every classical reconstruction of :data:`NAMES` that applies to ``operator``, by name."""
    out = {}
    pinv = pseudo_inverse(operator, y)
    if pinv is not None:
        out["pinv"] = pinv
    if super_resolution_factor(operator) is not None:
        _, h, w = operator.x_shape
        out["bicubic"] = upsample(y, (h, w), "bicubic")
        out["lanczos"] = upsample(y, (h, w), "lanczos")
    return out
