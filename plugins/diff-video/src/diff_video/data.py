"""Moving digits: procedurally generated clips of one scikit-learn digit gliding over a dark canvas.

In the spirit of Moving MNIST (Srivastava et al. 2015), at a size a CPU trains on: each clip is
``frames`` frames of ``size`` x ``size`` pixels (32 x 32 by default) with one 16 x 16 digit
(scikit-learn's 8 x 8 digits upsampled, :func:`diff_zoo.data.digits`) that starts at a uniform
integer position and moves with a constant integer velocity, each component in
``{-speed, ..., speed}`` and not both zero, bouncing off the borders (the position is reflected,
the velocity flips). Training clips draw digits from the zoo's training split, held-out clips
from its test split, so the held-out digits were never seen in training.

Clips are uint8 codes (N, F, 1, H, W) (0 is the background), with their labels (N,) and the
digit's top-left corner in every frame (N, F, 2); ``codes / 127.5 - 1`` is the video in [-1, 1].
Everything is drawn from the generator passed in, so a seed gives the same clips anywhere.

>>> import torch
>>> source = digit_source("train")
>>> clips = moving_digits(source, 2, 8, generator=torch.Generator().manual_seed(0))
>>> tuple(clips.codes.shape), tuple(clips.corners.shape)
((2, 8, 1, 32, 32), (2, 8, 2))
>>> bool((clips.corners[:, 1:] - clips.corners[:, :-1]).abs().max() <= 2 * 2)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from diffcore.errors import DiffcoreError

SIZE = 32
DIGIT = 16


def _zoo_data():
    try:
        from diff_zoo import data
    except ImportError as exc:
        raise ImportError('moving digits are made from diff-zoo\'s digits: pip install "diff-video[zoo]"') from exc
    return data


@dataclass(frozen=True, eq=False)
class DigitSource:
    """The 16 x 16 digits clips are made from: uint8 codes (M, 1, 16, 16) and labels (M,)."""

    split: str
    codes: torch.Tensor
    labels: torch.Tensor


@lru_cache(maxsize=2)
def digit_source(split: str = "train") -> DigitSource:
    """The digits of the zoo's ``train`` or ``test`` split (:func:`diff_zoo.data.digits`, 16 x 16)."""
    if split not in ("train", "test"):
        raise DiffcoreError(f"split must be 'train' or 'test', got {split!r}")
    dataset = _zoo_data().digits(size=DIGIT)
    images = getattr(dataset, split)
    return DigitSource(split, images.codes.clone(), images.labels.clone())


@dataclass(frozen=True, eq=False)
class Clips:
    """Moving-digit clips: codes (N, F, 1, H, W) uint8, labels (N,), corners (N, F, 2) as (top, left)."""

    codes: torch.Tensor
    labels: torch.Tensor
    corners: torch.Tensor

    def videos(self) -> torch.Tensor:
        """The clips as float32 videos in [-1, 1]."""
        return self.codes.float() / 127.5 - 1

    def __len__(self) -> int:
        return self.codes.shape[0]


def bounce(start: torch.Tensor, velocity: torch.Tensor, frames: int, limit: int) -> torch.Tensor:
    """Positions (N, F, 2) of points starting at ``start`` (N, 2) with ``velocity`` (N, 2), reflected at 0 and ``limit``.

    >>> bounce(torch.tensor([[0, 15]]), torch.tensor([[-2, 2]]), 4, 16)[0].tolist()
    [[0, 15], [2, 15], [4, 13], [6, 11]]
    """
    position, v = start.clone(), velocity.clone()
    out = [position.clone()]
    for _ in range(frames - 1):
        position = position + v
        low, high = position < 0, position > limit
        position = torch.where(low, -position, torch.where(high, 2 * limit - position, position))
        v = torch.where(low | high, -v, v)
        out.append(position.clone())
    return torch.stack(out, 1)


def moving_digits(source: DigitSource, n: int, frames: int, *, generator: torch.Generator, size: int = SIZE, speed: int = 2) -> Clips:
    """``n`` clips of ``frames`` frames from ``source`` (see the module docstring)."""
    if n < 1 or frames < 1:
        raise DiffcoreError(f"n and frames must be positive, got {n} and {frames}")
    digit = source.codes.shape[-1]
    if size < digit:
        raise DiffcoreError(f"the canvas ({size}) must be at least the digit's size ({digit})")
    if speed < 1 or speed > size - digit:
        raise DiffcoreError(f"speed must be between 1 and {size - digit} pixels per frame, got {speed}")
    limit = size - digit
    which = torch.randint(len(source.labels), (n,), generator=generator)
    start = torch.randint(limit + 1, (n, 2), generator=generator)
    velocity = torch.randint(-speed, speed + 1, (n, 2), generator=generator)
    still = (velocity == 0).all(1)
    while bool(still.any()):  # every clip moves
        velocity[still] = torch.randint(-speed, speed + 1, (int(still.sum()), 2), generator=generator)
        still = (velocity == 0).all(1)
    corners = bounce(start, velocity, frames, limit)
    codes = torch.zeros((n, frames, 1, size, size), dtype=torch.uint8)
    for i in range(n):
        glyph = source.codes[which[i]]
        for j in range(frames):
            top, left = corners[i, j].tolist()
            codes[i, j, :, top : top + digit, left : left + digit] = glyph
    return Clips(codes, source.labels[which].clone(), corners)


def frames_of(clips: Clips) -> torch.Tensor:
    """Every frame of ``clips`` as images (N * F, 1, H, W) in [-1, 1]."""
    v = clips.videos()
    return v.reshape(-1, *v.shape[2:])


def held_out_clips(n: int, frames: int, *, seed: int = 0, size: int = SIZE, speed: int = 2) -> Clips:
    """``n`` held-out clips (digits of the test split) from the stream seeded ``2**32 + seed``."""
    return moving_digits(digit_source("test"), n, frames, generator=torch.Generator().manual_seed(2**32 + seed), size=size, speed=speed)


__all__ = ["DIGIT", "SIZE", "Clips", "DigitSource", "bounce", "digit_source", "frames_of", "held_out_clips", "moving_digits"]
