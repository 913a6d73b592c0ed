"""``cross-frame``: every frame's self-attention reads the anchor frame (Text2Video-Zero, vid2vid-zero).

Text2Video-Zero (Khachatryan et al. 2023, Sec. 3.3) replaces each self-attention layer by
cross-frame attention on the first frame, ``softmax(Q_f K_1^T / sqrt(d)) V_1``, so that every
frame takes its appearance from the same anchor; vid2vid-zero (Wang et al. 2023) does the same
(with the first and the previous frame) after inverting the video with the inflated model. Here
both the inversion and the edit run with :class:`~diff_video.editing.streamed.StreamedCrossFrame`
(chunked, bit-for-bit the kernel's :class:`~diffcore.attention.CrossFrameAttention` on the whole
video), so editing towards the source reconstructs the video. ``attend`` picks the sources:
``first`` (Text2Video-Zero), ``previous`` or ``first+previous`` (vid2vid-zero's sparse-causal
attention). The prior needs self-attention layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from diff_video.editing.engine import Editor, EditRun
from diff_video.editing.streamed import StreamedCrossFrame


class CrossFrameRun(EditRun):
    """Two streamed cross-frame processors: one for the inversion pass, one for the edit pass."""

    def __init__(self, attend: str, *, detach: bool = False):
        self.inverting, self.editing = StreamedCrossFrame(attend), StreamedCrossFrame(attend, detach=detach)
        # null-text inversion's guided calls: a gradient through a frame's own path only, as in pix2video
        self.optimizing = StreamedCrossFrame(attend, detach=True)

    def inversion(self, frames):
        self.inverting.chunk(frames)
        return self.inverting

    def edit(self, frames, groups):
        self.editing.chunk(frames)
        return self.editing

    def optimization(self, frames):
        self.optimizing.chunk(frames)
        return self.optimizing

    def close(self):
        for streamed in (self.inverting, self.editing, self.optimizing):
            streamed.clear()


@dataclass(frozen=True, repr=False)
class CrossFrameEditor(Editor):
    """Cross-frame attention in the inversion and the edit (see the module docstring)."""

    attend: str = "first"
    name = "cross-frame"
    needs = "self"

    def __post_init__(self):
        StreamedCrossFrame(self.attend)  # checks the mode

    def start(self, prior, settings):
        return CrossFrameRun(self.attend)


__all__ = ["CrossFrameEditor", "CrossFrameRun"]
