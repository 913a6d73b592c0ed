"""``video-p2p``: cross-attention control between a source and a target branch of the video (Liu et al. 2023).

Video-P2P edits a video with prompt-to-prompt (Hertz et al. 2022) on a Tune-A-Video model: the
inverted video is denoised twice in one batch, once under the source prompt and once under the
target prompt, and for the first ``replace`` share of the steps the target branch's
cross-attention maps are the source branch's (``M_target <- M_source``, "word swap"), so the
layout, which the maps decide, stays the source's while the target's words change what is drawn.
Each branch's self-attention is sparse-causal (first + previous frame, streamed over chunks).

Here the model is tuned first when ``tune_steps > 0`` (as :mod:`~diff_video.editing.tune_a_video`),
the in-batch replacement is :class:`~diffcore.attention.ReplaceMaps` (``targets=1``, ``frames`` =
the chunk, on the cross-attention layers; guidance's doubled batch is two such groups), and the
result is the target branch. The maps are replaced whole, so the two prompts should have the same
number of tokens (a word swap); the paper's null-text inversion and its decoupled guidance are not
part of it. The prior needs cross-attention layers (text priors such as Stable Diffusion; the
class-conditional zoo priors have none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from diff_video.editing.engine import Editor, _conditioned
from diff_video.editing.inversion import ddim_denoise
from diff_video.editing.streamed import StreamedCrossFrame
from diff_video.editing.tune_a_video import TuneAVideoRun
from diffcore.attention import ReplaceMaps, Select
from diffcore.errors import DiffcoreError


def _stacked(source, target, frames: int):
    """One Cond for the batch [source branch (frames), target branch (frames)]."""
    changes = {}
    for field in dataclasses.fields(source):
        a, b = getattr(source, field.name), getattr(target, field.name)
        if a is None and b is None:
            continue
        if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape[0] != 1 or b.shape[0] != 1:
            raise DiffcoreError("video-p2p needs the source and the target as one condition each (a prompt), of the same kind")
        changes[field.name] = torch.cat([a.expand(frames, *a.shape[1:]), b.expand(frames, *b.shape[1:])])
    return dataclasses.replace(source, **changes)


class VideoP2PRun(TuneAVideoRun):
    """Optional tuning, then per chunk: both branches in one batch with streamed self-attention and in-batch map replacement."""

    def __init__(self, editor: VideoP2PEditor, prior, settings):
        super().__init__(editor)
        from diff_video.editing.inversion import edit_times

        self._steps = len(edit_times(prior.schedule, settings.steps, settings.strength)) - 1

    def model(self, prior, video, source):
        return super().model(prior, video, source) if self.editor.tune_steps > 0 else prior

    def inversion(self, frames):
        self.inverting.chunk(frames)
        streamed = self.inverting

        def processor(layer):  # cross-attention as it is: both branches start from the same inversion
            return streamed if layer.kind == "self" else layer.module.get_processor()

        return processor

    def edit(self, frames, groups):
        self.editing.chunk(frames)
        streamed = self.editing
        replace = ReplaceMaps(steps=range(round(self.editor.replace * self._steps)), targets=1, frames=frames)

        def processor(layer):
            return streamed if layer.kind == "self" else replace

        return processor

    def denoise(self, prior, x, times, target, source, guidance, frames, nulls=None):
        branches = _conditioned(prior, _stacked(source, target, frames), guidance)
        return ddim_denoise(branches, torch.cat([x, x]), times)[frames:]


@dataclass(frozen=True, repr=False)
class VideoP2PEditor(Editor):
    """Source and target branches with the source's cross-attention maps for the first ``replace`` share of the steps.

    ``tune_steps`` (0: none), ``clip``, ``lr``, ``seed``: the Tune-A-Video tuning before the edit.
    """

    replace: float = 0.8
    tune_steps: int = 0
    clip: int = 4
    lr: float = 1e-4
    seed: int = 0
    attend: str = "first+previous"
    name = "video-p2p"
    needs = "cross"
    select = Select(kind=("self", "cross"))

    def __post_init__(self):
        if not 0.0 <= float(self.replace) <= 1.0:
            raise DiffcoreError(f"replace is the share of edit steps with the source's maps, in [0, 1]; got {self.replace}")
        if not isinstance(self.tune_steps, int) or self.tune_steps < 0:
            raise DiffcoreError(f"tune_steps must be a whole number >= 0, got {self.tune_steps!r}")
        StreamedCrossFrame(self.attend)

    def start(self, prior, settings):
        if settings.null_text:
            raise DiffcoreError("video-p2p does not take null-text inversion here (its decoupled guidance is not implemented)")
        return VideoP2PRun(self, prior, settings)


__all__ = ["VideoP2PEditor", "VideoP2PRun"]
