"""The synthetic video the editors are measured on: a held-out zoo digit moving and rotating.

One 16 x 16 digit of the zoo's test split (never seen by zoo:digits in training) on the
background, scaled by ``scale``, turning back and forth by up to ``degrees`` and moving on a
small circle of ``radius`` pixels (one period of each over the clip), resampled bilinearly each frame from the original
glyph (no accumulated blur). The motion is known exactly, so optical flow on it is well posed,
and it is the zoo:digits prior's own domain, so edits from one digit class to another can be
checked with the zoo's digit classifier.

>>> video, label = moving_rotating_digit(0, frames=4)
>>> tuple(video.shape), float(video.min()) >= -1.0, float(video.max()) <= 1.0
((4, 1, 16, 16), True, True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from diffcore.errors import DiffcoreError


def moving_rotating_digit(
    index: int = 0, frames: int = 16, *, split: str = "test", degrees: float = 12.0, radius: float = 1.0, scale: float = 1.0
) -> tuple[torch.Tensor, int]:
    """Frames (F, 1, 16, 16) in [-1, 1] of digit ``index`` of ``split``, and its class."""
    from diff_video.data import digit_source

    source = digit_source(split)
    if not 0 <= index < len(source.labels):
        raise DiffcoreError(f"index must be between 0 and {len(source.labels) - 1}, got {index}")
    if not isinstance(frames, int) or frames < 1:
        raise DiffcoreError(f"frames must be a positive whole number, got {frames!r}")
    glyph = source.codes[index].float()[None] / 255.0  # (1, 1, 16, 16) ink in [0, 1], background 0
    size = glyph.shape[-1]
    out = []
    for f in range(frames):
        phase = 2 * math.pi * f / frames
        angle = math.radians(degrees) * math.sin(phase)
        dx, dy = radius * math.cos(phase) - radius, radius * math.sin(phase)
        c, s = math.cos(angle) / scale, math.sin(angle) / scale
        # output pixel -> input pixel, in normalised coordinates (x right, y down)
        theta = torch.tensor([[[c, -s, -2 * dx / size * c + 2 * dy / size * s], [s, c, -2 * dx / size * s - 2 * dy / size * c]]])
        grid = F.affine_grid(theta, (1, 1, size, size), align_corners=False)
        out.append(F.grid_sample(glyph, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0])
    video = torch.stack(out).clamp(0, 1) * 2 - 1
    return video, int(source.labels[index])


__all__ = ["moving_rotating_digit"]
