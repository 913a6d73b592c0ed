"""Per-frame inpainting: a box missing in some or all frames; ``y = mask * x`` (``y`` has the shape of ``x``).

>>> import torch
>>> op = FrameInpainting((2, 1, 4, 4), box=(0, 0, 2, 2), frames=[1])
>>> int(op.singulars().numel()), float(op.A(torch.ones(1, 2, 1, 4, 4)).sum())
(28, 28.0)
"""

from __future__ import annotations

import torch

from diff_video.operators.base import Selection, video_shape
from diffcore.errors import DiffcoreError


class FrameInpainting(Selection):
    """The box ``(top, left, height, width)`` is missing in ``frames`` (default: every frame); the rest is measured.

    A selection (singulars 1): ``Vt`` lists the observed entries first in raster order of
    ``(F, C, H, W)``; ``U`` puts them back with zeros on the missing ones.
    """

    def __init__(self, x_shape, *, box, frames=None, sigma_y: float = 0.0):
        f, c, h, w = video_shape(x_shape)
        try:
            top, left, bh, bw = (int(v) for v in box)
        except (TypeError, ValueError):
            raise DiffcoreError(f"box must be (top, left, height, width), got {box!r}") from None
        if bh < 1 or bw < 1 or top < 0 or left < 0 or top + bh > h or left + bw > w:
            raise DiffcoreError(f"box {tuple(box)} does not fit in frames of {h}x{w}")
        chosen = tuple(range(f)) if frames is None else tuple(sorted({int(i) for i in ([frames] if isinstance(frames, int) else frames)}))
        if not chosen or chosen[0] < 0 or chosen[-1] >= f:
            raise DiffcoreError(f"frames {list(chosen)} do not lie in the video's {f} frames")
        keep = torch.ones(f, c, h, w, dtype=torch.bool)
        for i in chosen:
            keep[i, :, top : top + bh, left : left + bw] = False
        self.box, self.frames = (top, left, bh, bw), chosen
        super().__init__((f, c, h, w), (f, c, h, w), keep, sigma_y)

    @property
    def mask(self) -> torch.Tensor:
        """1 where measured, 0 where missing, shaped like x (F, C, H, W)."""
        return self.keep.reshape(self.x_shape).float()

    def U(self, c):
        return self.scatter(c).reshape(c.shape[0], *self.y_shape)

    def Ut(self, y):
        self.check_y(y)
        return y.reshape(y.shape[0], -1)[:, self.keep.to(y.device)]

    def __repr__(self) -> str:
        return f"FrameInpainting(x_shape={self.x_shape}, box={self.box}, frames={list(self.frames)}, sigma_y={self.sigma_y})"
