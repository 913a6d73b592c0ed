"""The runs behind ``diffcore video``: settings checked up front, then videos and their metrics.

:func:`prepare` builds everything a run shares (the prior, conditioned as asked; the method) and
checks every option before any work; the returned :class:`VideoRun` maps a seed and an input
video to the output videos and a metrics record. The command line (one run, files written into
``--out`` at the end) and the job tasks (one item per seed or per input file, outputs returned as
bytes) both go through it, so they make the same videos from the same seeds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from diff_video import tasks
from diff_video.io import read_video
from diffcore import Cond
from diffcore.errors import DiffcoreError

COMMANDS = ("generate", "extend", "interpolate", "upscale")
OUTPUTS = ("gif", "mp4")


def luminance(frames: torch.Tensor) -> torch.Tensor:
    """(F, 3, H, W) -> (F, 1, H, W) with Rec. 601 weights."""
    w = frames.new_tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
    return (frames * w).sum(1, keepdim=True)


def conditioned(prior, label: int | None, guidance: float):
    """``prior`` ready to use without a cond: fixed to ``label`` (guided when ``guidance != 1``), or unconditional."""
    from diffcore.priors import Conditioned, Guided, unconditional

    if label is None:
        if guidance != 1.0:
            raise DiffcoreError("--guidance needs --label (classifier-free guidance towards a class)")
        if isinstance(prior, Guided | Conditioned):  # conditioned by its spec already (a prompt)
            return prior
        return unconditional(prior)
    if "labels" not in prior.accepts:
        raise DiffcoreError(
            "--label needs a class-conditional prior; this one accepts " + (", ".join(sorted(prior.accepts)) or "no conditioning")
        )
    names = prior.class_names
    if names is not None and not 0 <= label < len(names):
        raise DiffcoreError(f"--label must be a class index from 0 to {len(names) - 1}, got {label}")
    cond = Cond(labels=torch.tensor([int(label)]))
    if guidance == 1.0:
        return Conditioned(prior, cond)
    if prior.null_cond is None:
        raise DiffcoreError("--guidance needs a prior with an unconditional model (a null label); use --guidance 1")
    return Guided(prior, guidance, cond, prior.null_cond)


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """The options every video command shares: reading the input (``resize``, the ``start``/``end``/``stride``/``count``
    frame selection), writing the outputs (``fps``, ``scale``, ``outputs``) and the device; ``as_dict`` for the records."""

    resize: bool = False
    start: float | None = None
    end: float | None = None
    stride: int = 1
    count: int | None = None
    fps: float = 8.0
    scale: int = 4
    outputs: tuple[str, ...] = OUTPUTS
    device: str | None = None
    dtype: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The options as a record: the command's own first, then these shared ones; tuples as lists."""
        shared = [f.name for f in fields(VideoOptions)]
        names = [f.name for f in fields(self) if f.name not in shared] + shared
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in ((k, getattr(self, k)) for k in names)}


@dataclass(frozen=True)
class Settings(VideoOptions):
    """Everything a run takes besides the seed and the input file."""

    command: str
    prior: str
    n: int = 1
    frames: int | None = None
    steps: int = 50
    label: int | None = None
    guidance: float = 1.0
    method: str = "guidance"
    weight: float = 5.0
    eta: float = 0.0
    new: int = 8
    context: int | None = None
    factor: int = 2


@dataclass
class VideoRun:
    """A prepared run: ``settings``, the conditioned prior, and what it made last."""

    settings: Settings
    prior: Any
    timing: dict[str, float] = field(default_factory=dict)

    def input_video(self, path) -> torch.Tensor:
        """The input file as one video (1, F, C, H, W) in the prior's channels, resized when ``resize`` is set."""
        s = self.settings
        channels, height, width = self.prior.sample_shape[1:]
        if s.command == "upscale":
            height, width = height // s.factor, width // s.factor
        clip = read_video(path, start=s.start, end=s.end, stride=s.stride, count=s.count, size=(height, width) if s.resize else None)
        frames = clip.frames
        if channels == 1:
            frames = luminance(frames)
        elif channels != 3:
            raise DiffcoreError(f"this prior's frames have {channels} channels; videos are read as RGB")
        if tuple(frames.shape[-2:]) != (height, width):
            raise DiffcoreError(
                f"{Path(path).name} has frames of {frames.shape[-2]}x{frames.shape[-1]} but this {s.command} takes {height}x{width}; "
                "pass --resize to resize them"
            )
        return frames[None]

    def __call__(self, seed: int, video: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """The output videos (N, F, C, H, W) for ``seed`` (and the input ``video`` of the conditional commands) and their metrics."""
        s = self.settings
        g = torch.Generator().manual_seed(int(seed))
        common = dict(method=s.method, weight=s.weight, steps=s.steps, eta=s.eta, generator=g)
        began = time.perf_counter()
        metrics: dict[str, Any] = {"seed": int(seed)}
        if s.command == "generate":
            out = tasks.generate(self.prior, s.n, frames=s.frames, steps=s.steps, generator=g)
        else:
            video = video.expand(s.n, *video.shape[1:])
            if s.command == "extend":
                out = tasks.extend(self.prior, video, s.new, context=s.context, **common)
                metrics["input_kept_exactly"] = bool(torch.equal(out[:, : video.shape[1]], video))
            elif s.command == "interpolate":
                out = tasks.interpolate(self.prior, video, s.factor, **common)
                metrics["input_rmse"] = float((out[:, :: s.factor] - video).pow(2).mean().sqrt())
            else:
                out = tasks.upscale(self.prior, video, s.factor, **common)
                pooled = torch.nn.functional.avg_pool2d(out.flatten(0, 1), s.factor).unflatten(0, out.shape[:2])
                metrics["downsampled_rmse"] = float((pooled - video).pow(2).mean().sqrt())
            metrics["input_frames"] = int(video.shape[1])
        seconds = time.perf_counter() - began
        metrics.update(videos=int(out.shape[0]), frames=int(out.shape[1]), shape=list(out.shape[2:]), seconds=round(seconds, 3))
        metrics["seconds_per_frame"] = round(seconds / (out.shape[0] * out.shape[1]), 4)
        return out.clamp(-1, 1), metrics


def prepare(settings: Settings) -> VideoRun:
    """Check ``settings`` and build the prior (one-line errors before any work)."""
    from diffcore.devices import build_prior

    s = settings
    if s.command not in COMMANDS:
        raise DiffcoreError(f"unknown video command {s.command!r}; known: {', '.join(COMMANDS)}")
    for name, value, least in (("n", s.n, 1), ("steps", s.steps, 1), ("new", s.new, 1), ("scale", s.scale, 1), ("stride", s.stride, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise DiffcoreError(f"--{name} must be a whole number >= {least}, got {value!r}")
    if s.method not in tasks.METHODS:
        raise DiffcoreError(f"--method must be one of {', '.join(tasks.METHODS)}, got {s.method!r}")
    bad = [o for o in s.outputs if o not in OUTPUTS]
    if bad or not s.outputs:
        raise DiffcoreError(f"--format takes {' and/or '.join(OUTPUTS)}, got {', '.join(bad) or 'nothing'}")
    prior = build_prior(s.prior, device=s.device, dtype=s.dtype)
    tasks.require_video_prior(prior)
    prior = conditioned(prior, s.label, s.guidance)
    if s.frames is not None:
        prior = tasks.frames_prior(prior, s.frames)
    if s.command in ("extend", "interpolate", "upscale") and getattr(prior, "latent", None) is not None:
        raise DiffcoreError(f"video {s.command} works on pixel video priors; {s.prior!r} is latent")
    if s.command == "upscale":
        _, height, width = prior.sample_shape[1:]
        if s.factor < 2 or height % s.factor or width % s.factor:
            raise DiffcoreError(f"--factor must be >= 2 and divide the prior's frame size {height}x{width}, got {s.factor}")
    if s.command == "interpolate" and (s.factor < 2 or s.factor + 1 > prior.sample_shape[0]):
        raise DiffcoreError(
            f"--factor must be between 2 and {prior.sample_shape[0] - 1} for this prior's {prior.sample_shape[0]} frames, got {s.factor}"
        )
    return VideoRun(s, prior)


def tiled(videos: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """N videos (N, F, C, H, W) side by side in one video (F, C, H', W'), on a white background."""
    n, f, c, h, w = videos.shape
    cols = min(n, 4)
    rows = -(-n // cols)
    out = torch.ones(f, c, rows * (h + padding) + padding, cols * (w + padding) + padding, dtype=videos.dtype)
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        out[:, :, top : top + h, left : left + w] = videos[i]
    return out


def outputs(run: VideoRun, videos: torch.Tensor, metrics: dict[str, Any], *, each: bool) -> dict[str, bytes]:
    """The files of a run as ``{name: bytes}``: each video (``video-000.gif``) or, for a job item, one tiled video, plus the metrics."""
    from diff_video.io import encode_video

    s = run.settings
    files: dict[str, bytes] = {}
    clips = [(f"video-{i:03d}", v) for i, v in enumerate(videos)] if each else [("", tiled(videos))]
    for name, clip in clips:
        for fmt in s.outputs:
            files[f"{name}.{fmt}"] = encode_video(clip, f".{fmt}", s.fps, scale=s.scale)
    record = {"format": "diff-video-run", "settings": s.as_dict(), "metrics": metrics}
    files[("metrics" if each else "") + ".json"] = (json.dumps(record, indent=2) + "\n").encode()
    return files


__all__ = ["COMMANDS", "OUTPUTS", "Settings", "VideoRun", "conditioned", "luminance", "outputs", "prepare", "tiled"]
