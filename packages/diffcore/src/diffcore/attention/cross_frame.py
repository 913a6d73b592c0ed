"""Cross-frame attention: each frame's self-attention looks at the keys and values of other frames.

An image model becomes temporally consistent over the frames of a video when every frame's
queries attend to the same anchor frame's keys and values: Text2Video-Zero (Khachatryan et al.
2023, Sec. 3.3) uses the first frame; Tune-A-Video's sparse-causal attention (Wu et al. 2023) and
Pix2Video (Ceylan et al. 2023, Sec. 3.2) use the first and the previous frame. For frame ``f``
with source frames ``S(f)``::

    K_f' = concat_{s in S(f)} K_s,    V_f' = concat_{s in S(f)} V_s,    out_f = softmax(Q_f K_f'^T / sqrt(d)) V_f'

The batch holds ``N`` videos of ``frames`` frames each, frames contiguous per video (batch
``N * frames``; classifier-free guidance's doubled batch is ``2N`` videos).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from diffcore.attention.processor import AttentionCall, AttentionProcessor
from diffcore.errors import DiffcoreError

__all__ = ["CrossFrameAttention"]

MODES = ("first", "previous", "first+previous")


class CrossFrameAttention(AttentionProcessor):
    """Keys and values from other frames of the same video (self-attention layers by default).

    Args:
        frames: frames per video; the batch must be a multiple of it.
        attend: the source frames of each frame ``f``: ``"first"`` (frame 0, Text2Video-Zero),
            ``"previous"`` (``f - 1``, frame 0 itself for ``f = 0``), ``"first+previous"``
            (frames 0 and ``f - 1``, Pix2Video / sparse-causal), a list of frame indices (the same
            for every frame; negative ones count from the end), or ``f(frame, frames) -> list``
            giving the same number of sources for every frame.

    Where every frame has the same sources after dropping repeats (one frame; ``"first+previous"``
    with two frames), repeats are dropped; otherwise a repeated source stays, which changes
    nothing but rounding, since attending twice to the same keys and values gives the same
    softmax average. With one frame every mode is plain attention.
    """

    default_select = "self"

    def __init__(self, frames: int, attend: str | Sequence[int] | Callable[[int, int], Sequence[int]] = "first"):
        super().__init__()
        if not isinstance(frames, int) or frames < 1:
            raise DiffcoreError(f"frames must be a positive int, got {frames!r}")
        if isinstance(attend, str) and attend not in MODES:
            raise DiffcoreError(
                f"unknown cross-frame mode {attend!r}; expected one of {', '.join(MODES)}, a list of frame indices or a function"
            )
        self.frames, self.attend = frames, attend
        self._sources = self._source_table()

    def _sources_of(self, frame: int) -> list[int]:
        if self.attend == "first":
            return [0]
        if self.attend == "previous":
            return [max(frame - 1, 0)]
        if self.attend == "first+previous":
            return [0, max(frame - 1, 0)]
        chosen = self.attend(frame, self.frames) if callable(self.attend) else self.attend
        out = []
        for s in chosen:
            if not -self.frames <= int(s) < self.frames:
                raise DiffcoreError(f"cross-frame source {s} is not a frame of a {self.frames}-frame video")
            out.append(int(s) % self.frames)
        return out

    def _source_table(self) -> torch.Tensor:
        rows = [self._sources_of(f) for f in range(self.frames)]
        if len({len(r) for r in rows}) != 1 or not rows[0]:
            raise DiffcoreError(f"every frame needs the same positive number of source frames; got {[len(r) for r in rows]}")
        unique = [list(dict.fromkeys(r)) for r in rows]
        if len({len(r) for r in unique}) == 1:
            rows = unique
        return torch.tensor(rows, dtype=torch.long)

    def edit_keys_values(self, call: AttentionCall, query, key, value):
        batch, heads, length, dim = key.shape
        if batch % self.frames:
            raise DiffcoreError(f"{call.layer.name}: a batch of {batch} is not a whole number of {self.frames}-frame videos")
        sources = self._sources.to(key.device)
        count = sources.shape[1]

        def gather(t: torch.Tensor) -> torch.Tensor:
            t = t.reshape(batch // self.frames, self.frames, heads, length, dim)[:, sources]  # (N, F, S, heads, L, d)
            return t.permute(0, 1, 3, 2, 4, 5).reshape(batch, heads, count * length, dim)

        return gather(key), gather(value)

    def __repr__(self) -> str:
        return f"CrossFrameAttention(frames={self.frames}, attend={self.attend!r})"
