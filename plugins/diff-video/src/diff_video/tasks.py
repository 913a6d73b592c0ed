"""Video tasks on a video prior: generation, extension, frame interpolation and spatial upsampling.

Each conditional task is a measurement of the video to be made and a conditional sampler
(``method``: ``"guidance"``, reconstruction guidance, or ``"replacement"``; see
:mod:`diff_video.conditional`), run in windows of the prior's frame count ``W`` so that videos
longer than the model takes are made piece by piece:

- :func:`extend`: ``new`` frames after the input, autoregressively: each window keeps the last
  ``context`` frames made so far as its measured frames (:class:`~diff_video.operators.TemporalSubsampling`
  with ``first=context``) and makes ``W - context`` new ones;
- :func:`interpolate`: ``factor - 1`` frames between consecutive input frames; each window spans
  input frames ``factor`` apart (measured) and fills the frames between; windows share their
  boundary frame;
- :func:`upscale`: every frame ``factor`` times larger (:class:`~diff_video.operators.FrameSuperResolution`),
  ``W`` frames at a time;
- :func:`generate`: unconditional (or class-conditional) samples of ``frames`` frames.

Videos are (N, F, C, H, W) in [-1, 1]. A prior that is not a video prior, a frame count it cannot
take, or a frame size other than the prior's is a one-line :class:`~diffcore.errors.DiffcoreError`.
"""

from __future__ import annotations

import copy

import torch

from diff_video.operators import FrameSuperResolution, TemporalSubsampling
from diff_video.reconstruction_guidance import ReconstructionGuidance
from diff_video.replacement import Replacement
from diffcore.adapters.video import is_video_prior
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.priors.wrapper import PriorWrapper

METHODS = ("guidance", "replacement")


def require_video_prior(prior) -> None:
    """Refuse a prior whose samples are not videos (F, C, H, W)."""
    if not is_video_prior(prior):
        shape = getattr(prior, "image_shape", None)
        raise DiffcoreError(
            f"this task needs a video prior (samples (F, C, H, W)); the prior draws {tuple(shape) if shape else 'something else'}: "
            "use zoo:moving-digits, diffusers-video, or per-frame:base=<image prior>"
        )


def _reframed(prior, count: int):
    with_frames = getattr(prior, "with_frames", None)
    if with_frames is not None:
        return with_frames(count)
    if isinstance(prior, PriorWrapper) and "sample_shape" not in vars(prior):  # guidance, fixed conditioning: re-frame the inner prior
        twin = copy.copy(prior)
        twin.prior = _reframed(prior.prior, count)
        return twin
    raise DiffcoreError(
        f"this prior draws {prior.sample_shape[0]} frames and cannot change its frame count; ask for {prior.sample_shape[0]}"
    )


def frames_prior(prior, count: int):
    """``prior`` drawing videos of ``count`` frames (its ``with_frames``, through wrappers), or a one-line error when it cannot."""
    require_video_prior(prior)
    if prior.sample_shape[0] == count:
        return prior
    try:
        return _reframed(prior, count)
    except DiffcoreError as exc:
        raise DiffcoreError(f"cannot make {count} frames with this prior: {exc}") from None


def _solver(method: str, weight: float, eta: float):
    if method == "guidance":
        return ReconstructionGuidance(weight=weight, eta=eta)
    if method == "replacement":
        return Replacement(eta=eta)
    raise DiffcoreError(f"unknown method {method!r}; use {' or '.join(METHODS)}")


def _check_video(video, prior, what: str = "video", size=None) -> torch.Tensor:
    if not isinstance(video, torch.Tensor) or video.ndim != 5:
        raise ShapeError(f"{what} has shape {tuple(getattr(video, 'shape', ()))}; expected videos (N, F, C, H, W)")
    channels, height, width = prior.sample_shape[1:]
    want = (channels, height, width) if size is None else (channels, *size)
    if tuple(video.shape[2:]) != want:
        raise ShapeError(
            f"{what} frames are {video.shape[2]}x{video.shape[3]}x{video.shape[4]} (C x H x W) but this prior takes "
            f"{want[0]}x{want[1]}x{want[2]}; "
            "resize the video (--resize on the command line, size= in read_video)"
        )
    return video


def generate(
    prior, n: int, *, frames: int | None = None, steps: int = 50, sampler: str = "ddim", generator=None, cond=None
) -> torch.Tensor:
    """``n`` videos of ``frames`` frames (default the prior's) drawn from ``prior`` (decoded for latent priors)."""
    from diffcore.samplers import sample

    require_video_prior(prior)
    prior = frames_prior(prior, frames or prior.sample_shape[0])
    return sample(prior, n, steps=steps, sampler=sampler, generator=generator, cond=cond)


def _window_prior(prior):
    require_video_prior(prior)
    if getattr(prior, "latent", None) is not None:
        raise DiffcoreError(
            "extension, interpolation and upscaling work on pixel video priors (replacement needs the pixels); this prior is latent"
        )
    return prior


def extend(
    prior,
    video: torch.Tensor,
    new: int,
    *,
    context: int | None = None,
    method: str = "guidance",
    weight: float = 5.0,
    steps: int = 50,
    eta: float = 0.0,
    generator=None,
    cond=None,
) -> torch.Tensor:
    """``video`` followed by ``new`` frames, made ``W - context`` at a time from the last ``context`` frames (default ``W // 2``)."""
    prior = _window_prior(prior)
    video = _check_video(video, prior)
    window = prior.sample_shape[0]
    context = window // 2 if context is None else int(context)
    if not 1 <= context < window:
        raise DiffcoreError(f"context must be between 1 and {window - 1} frames (the prior makes {window} frames at a time), got {context}")
    if video.shape[1] < context:
        raise DiffcoreError(f"the video has {video.shape[1]} frames; extending it needs at least context={context}")
    if not isinstance(new, int) or new < 1:
        raise DiffcoreError(f"new must be a positive number of frames, got {new!r}")
    solver = _solver(method, weight, eta)
    op = TemporalSubsampling(prior.sample_shape, first=context)
    out = video
    while out.shape[1] < video.shape[1] + new:
        made = solver(prior, op, out[:, -context:], steps=steps, generator=generator, cond=cond)
        out = torch.cat([out, made[:, context:]], 1)
    return out[:, : video.shape[1] + new]


def interpolate(
    prior,
    video: torch.Tensor,
    factor: int = 2,
    *,
    method: str = "guidance",
    weight: float = 5.0,
    steps: int = 50,
    eta: float = 0.0,
    generator=None,
    cond=None,
) -> torch.Tensor:
    """``factor - 1`` new frames between consecutive frames of ``video``: (F - 1) factor + 1 frames in all."""
    prior = _window_prior(prior)
    video = _check_video(video, prior)
    window = prior.sample_shape[0]
    if not isinstance(factor, int) or factor < 2:
        raise DiffcoreError(f"factor must be a whole number >= 2, got {factor!r}")
    if factor + 1 > window:
        raise DiffcoreError(f"interpolating by {factor} needs windows of {factor + 1} frames; this prior makes {window} at a time")
    per_window = (window - 1) // factor  # input gaps per window
    solver = _solver(method, weight, eta)
    n, f = video.shape[:2]
    if f < 2:
        raise DiffcoreError("interpolation needs at least 2 frames")
    pieces = [video[:, :1]]
    start = 0
    while start < f - 1:
        gaps = min(per_window, f - 1 - start)
        known = video[:, start : start + gaps + 1]
        length = gaps * factor + 1
        op = TemporalSubsampling((length, *prior.sample_shape[1:]), every=factor)
        made = solver(frames_prior(prior, length), op, known, steps=steps, generator=generator, cond=cond)
        made[:, ::factor] = known  # the input frames bit for bit (the last replacement leaves them within rounding)
        pieces.append(made[:, 1:])
        start += gaps
    return torch.cat(pieces, 1)


def upscale(
    prior,
    video: torch.Tensor,
    factor: int = 2,
    *,
    method: str = "guidance",
    weight: float = 5.0,
    steps: int = 50,
    eta: float = 0.0,
    generator=None,
    cond=None,
) -> torch.Tensor:
    """``video`` with every frame ``factor`` times larger, in windows of the prior's frame count."""
    prior = _window_prior(prior)
    if not isinstance(factor, int) or factor < 2:
        raise DiffcoreError(f"factor must be a whole number >= 2, got {factor!r}")
    _, height, width = prior.sample_shape[1:]
    if height % factor or width % factor:
        raise DiffcoreError(f"factor {factor} does not divide the prior's frame size {height}x{width}")
    video = _check_video(video, prior, "the low-resolution video", size=(height // factor, width // factor))
    window = prior.sample_shape[0]
    solver = _solver(method, weight, eta)
    pieces = []
    for start in range(0, video.shape[1], window):
        part = video[:, start : start + window]
        windowed = frames_prior(prior, part.shape[1])
        op = FrameSuperResolution(windowed.sample_shape, factor=factor)
        pieces.append(solver(windowed, op, part, steps=steps, generator=generator, cond=cond))
    return torch.cat(pieces, 1)


__all__ = ["METHODS", "extend", "frames_prior", "generate", "interpolate", "require_video_prior", "upscale"]
