"""The run behind ``diffcore video edit``: settings checked up front, then an input file to its edit, comparison and metrics.

:func:`prepare_edit` builds the prior and the editor and checks every option (the editor's needs,
the target and source conditions) before any work; the returned :class:`EditJob` maps an input
file to ``{name: bytes}``: the edit (MP4 and/or GIF), the side-by-side comparison (source | edit)
and ``metrics.json``. The command line writes them into ``--out`` at the end (nothing when
anything fails); ``--job`` runs one input file per item through the same object.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from diff_video.editing import EDITORS, EditSettings, condition, edit_video, make_editor
from diff_video.editing.metrics import edit_metrics
from diff_video.runs import OUTPUTS, VideoOptions
from diffcore.errors import DiffcoreError


@dataclass(frozen=True)
class EditOptions(VideoOptions):
    """Everything an edit takes besides the input file."""

    prior: str
    target: str
    editor: str = "pix2video"
    source: str | None = None
    steps: int = 20
    strength: float = 0.8
    guidance: float = 1.0
    chunk: int = 8
    refine: int = 2
    null_text: int = 0
    weight: float | None = None
    clip: str | None = None


@dataclass
class EditJob:
    """A prepared edit: options, prior, editor, settings."""

    options: EditOptions
    prior: Any
    editor: Any
    settings: EditSettings
    clip: Any = None
    timing: dict[str, float] = field(default_factory=dict)

    def read(self, path) -> torch.Tensor:
        """The input file as frames (F, C, H, W) in the prior's channels and image size (resized with ``resize``)."""
        from diff_video.io import read_video
        from diff_video.runs import luminance

        o = self.options
        channels, height, width = self.prior.image_shape
        clip = read_video(path, start=o.start, end=o.end, stride=o.stride, count=o.count, size=(height, width) if o.resize else None)
        frames = clip.frames
        if channels == 1:
            frames = luminance(frames)
        elif channels != 3:
            raise DiffcoreError(f"this prior's images have {channels} channels; videos are read as RGB")
        if tuple(frames.shape[-2:]) != (height, width):
            raise DiffcoreError(
                f"{Path(path).name} has frames of {frames.shape[-2]}x{frames.shape[-1]} but the prior makes {height}x{width}; pass --resize"
            )
        return frames

    def __call__(self, path) -> dict[str, bytes]:
        """The output files of editing ``path``: ``edit.gif``/``edit.mp4``, ``compare.gif``/``compare.mp4``, ``metrics.json``."""
        from diff_video.io import encode_video

        o = self.options
        source = self.read(path)
        began = time.perf_counter()
        edited = edit_video(self.prior, source, o.target, source=o.source, editor=self.editor, settings=self.settings).clamp(-1, 1)
        seconds = time.perf_counter() - began
        target = int(o.target) if o.target.isdigit() and self.prior.class_names is not None else None
        measured = edit_metrics(source, edited, target=target, prompt=o.target, clip=self.clip)
        metrics = {**measured, "frames": int(source.shape[0]), "seconds": round(seconds, 3)}
        files = {}
        gap = torch.ones(*source.shape[:-1], 2)  # white, two pixels: even widths stay even (H.264)
        side_by_side = torch.cat([source, gap, edited], dim=-1)
        for fmt in o.outputs:
            files[f"edit.{fmt}"] = encode_video(edited, f".{fmt}", o.fps, scale=o.scale)
            files[f"compare.{fmt}"] = encode_video(side_by_side, f".{fmt}", o.fps, scale=o.scale)
        record = {"format": "diff-video-run", "command": "edit", "input": Path(path).name, "settings": o.as_dict(), "metrics": metrics}
        files["metrics.json"] = (json.dumps(record, indent=2) + "\n").encode()
        return files


def prepare_edit(options: EditOptions) -> EditJob:
    """Check ``options`` and build the prior and the editor (one-line errors before any work)."""
    from diffcore.devices import build_prior

    o = options
    if o.editor not in EDITORS:
        raise DiffcoreError(f"--editor must be one of {', '.join(EDITORS)}, got {o.editor!r}")
    for name, value, least in (("scale", o.scale, 1), ("stride", o.stride, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise DiffcoreError(f"--{name} must be a whole number >= {least}, got {value!r}")
    bad = [x for x in o.outputs if x not in OUTPUTS]
    if bad or not o.outputs:
        raise DiffcoreError(f"--format takes {' and/or '.join(OUTPUTS)}, got {', '.join(bad) or 'nothing'}")
    settings = EditSettings(steps=o.steps, strength=o.strength, guidance=o.guidance, chunk=o.chunk, refine=o.refine, null_text=o.null_text)
    if o.weight is not None and o.editor != "pix2video":
        raise DiffcoreError("--weight is the pix2video guided update's weight; it goes with --editor pix2video")
    editor = make_editor(o.editor, **({} if o.weight is None else {"weight": o.weight}))
    prior = build_prior(o.prior, device=o.device, dtype=o.dtype)
    if len(prior.sample_shape) != 3:
        raise DiffcoreError(f"video edit takes an image prior; {o.prior!r} makes samples of shape {tuple(prior.sample_shape)}")
    editor.check(prior)
    condition(prior, o.target, "target")
    condition(prior, o.source, "source")
    if o.null_text:
        from diff_video.editing.null_text import null_embedding

        null_embedding(prior)
        editor.start(prior, settings)  # an editor that cannot take it says so now
    clip = None
    if o.clip is not None:
        from diff_video.editing.clip_score import load_clip

        clip = load_clip(o.clip)
    return EditJob(o, prior, editor, settings, clip)


__all__ = ["OUTPUTS", "EditJob", "EditOptions", "prepare_edit"]
