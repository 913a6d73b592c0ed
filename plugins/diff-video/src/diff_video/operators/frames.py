"""Temporal subsampling: ``y`` is some frames of the video (frame interpolation, extension, prediction).

``keep`` names the measured frames (``every=k`` keeps frames 0, k, 2k, ...; ``first=k`` and
``last=k`` the first or last k); the others are what a solver fills in. A selection: its SVD has
singulars 1, ``Vt`` lists the measured frames' entries first.

>>> import torch
>>> op = TemporalSubsampling((5, 1, 2, 2), every=2)
>>> op.frames, op.y_shape
((0, 2, 4), (3, 1, 2, 2))
>>> op.A(torch.arange(20.0).reshape(1, 5, 1, 2, 2))[0, :, 0, 0, 0].tolist()
[0.0, 8.0, 16.0]
"""

from __future__ import annotations

import torch

from diff_video.operators.base import Selection, video_shape
from diffcore.errors import DiffcoreError


def chosen_frames(count: int, *, keep=None, every=None, first=None, last=None) -> tuple[int, ...]:
    """The frame indices that one of ``keep``, ``every``, ``first`` or ``last`` names, checked against ``count`` frames."""
    given = [name for name, value in (("keep", keep), ("every", every), ("first", first), ("last", last)) if value is not None]
    if len(given) != 1:
        raise DiffcoreError(f"temporal subsampling needs exactly one of keep, every, first or last; got {', '.join(given) or 'none'}")
    if keep is not None:
        frames = sorted({int(i) for i in ([keep] if isinstance(keep, int) else keep)})
    else:
        k = every if every is not None else first if first is not None else last
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise DiffcoreError(f"{given[0]} must be a positive whole number of frames, got {k!r}")
        if every is not None:
            frames = list(range(0, count, k))
        elif first is not None:
            frames = list(range(min(k, count)))
        else:
            frames = list(range(max(0, count - k), count))
    if not frames or frames[0] < 0 or frames[-1] >= count:
        raise DiffcoreError(f"measured frames {frames} do not lie in the video's {count} frames (0 to {count - 1})")
    return tuple(frames)


class TemporalSubsampling(Selection):
    """``y = x[:, frames]``: the measured frames, ``y_shape = (K, C, H, W)``."""

    def __init__(self, x_shape, *, keep=None, every=None, first=None, last=None, sigma_y: float = 0.0):
        f, c, h, w = video_shape(x_shape)
        self.frames = chosen_frames(f, keep=keep, every=every, first=first, last=last)
        mask = torch.zeros(f, c, h, w, dtype=torch.bool)
        mask[list(self.frames)] = True
        super().__init__((f, c, h, w), (len(self.frames), c, h, w), mask, sigma_y)

    def U(self, c):
        return c.reshape(c.shape[0], *self.y_shape)

    def Ut(self, y):
        self.check_y(y)
        return y.reshape(y.shape[0], -1)

    def __repr__(self) -> str:
        return f"TemporalSubsampling(x_shape={self.x_shape}, frames={list(self.frames)}, sigma_y={self.sigma_y})"
