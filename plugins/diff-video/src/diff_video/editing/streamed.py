"""Cross-frame attention over a video processed in chunks of consecutive frames.

:class:`diffcore.attention.CrossFrameAttention` gathers the keys and values of the source frames
from the batch, so the whole video must be one batch. Editing a long video that way holds every
frame's activations at once. :class:`StreamedCrossFrame` gives the same attention when the video
goes through the network a chunk of frames at a time (Pix2Video, Ceylan et al. 2023, edits frame
after frame for the same reason): for each layer call (layer, step) it keeps the keys and values
of the anchor frame (frame 0) and of the last frame of the chunk just done, and a later chunk
reads them there. What it holds is two frames' keys and values per (layer, step) whatever the
frame count, and the chunked result equals the one-batch ``CrossFrameAttention`` (tested).

For frame ``f`` the sources are ``first``: ``[0]``; ``previous``: ``[f - 1]`` (frame 0: itself);
``first+previous``: ``[0, f - 1]`` (frame 0: ``[0, 0]``), the kernel's modes. The batch of a
chunk of ``C`` frames holds ``G`` groups of ``C`` (``G = 2`` under classifier-free guidance).
"""

from __future__ import annotations

import torch

from diffcore.attention import AttentionProcessor
from diffcore.errors import DiffcoreError

MODES = ("first", "previous", "first+previous")


class StreamedCrossFrame(AttentionProcessor):
    """Cross-frame attention whose anchor and previous frame may lie in chunks done earlier.

    Call :meth:`chunk` with the frame count of each chunk before running it, chunks in frame order;
    install the same object (:func:`diffcore.attention.control`) for each chunk's pass, so that
    the step counts of every chunk line up. The cache stays across passes until :meth:`clear`.
    With ``detach`` the gathered keys and values carry no gradient, so a gradient with respect to
    a frame's input flows through its own queries only, as when the frames are run one after the
    other (Pix2Video's guided update); the result is then the same for any chunking.
    """

    default_select = "self"

    def __init__(self, attend: str = "first+previous", *, detach: bool = False):
        super().__init__()
        self.detach = bool(detach)
        if attend not in MODES:
            raise DiffcoreError(f"unknown cross-frame mode {attend!r}; expected one of {', '.join(MODES)}")
        self.attend = attend
        self.frames: int | None = None
        self._anchor: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._last: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def chunk(self, frames: int) -> None:
        """The next pass runs a chunk of ``frames`` consecutive frames (per group)."""
        if not isinstance(frames, int) or frames < 1:
            raise DiffcoreError(f"a chunk has a positive number of frames, got {frames!r}")
        self.frames = frames

    @property
    def nbytes(self) -> int:
        """Bytes of cached keys and values."""
        return sum(t.numel() * t.element_size() for pair in (*self._anchor.values(), *self._last.values()) for t in pair)

    def clear(self) -> None:
        """Forget the cached frames: the next chunk starts a new video."""
        self._anchor, self._last = {}, {}

    def edit_keys_values(self, call, query, key, value):
        if self.frames is None:
            raise DiffcoreError("StreamedCrossFrame needs chunk(frames) before each pass")
        batch, heads, length, dim = key.shape
        c = self.frames
        if batch % c:
            raise DiffcoreError(f"{call.layer.name}: a batch of {batch} is not whole groups of a {c}-frame chunk")
        k, v = key.reshape(batch // c, c, heads, length, dim), value.reshape(batch // c, c, heads, length, dim)
        where = (call.layer.name, call.step)
        if where not in self._anchor:  # this chunk holds frame 0
            self._anchor[where] = (k[:, 0].detach(), v[:, 0].detach())
            before_k, before_v = k[:, :1], v[:, :1]
        else:
            before_k, before_v = (t.unsqueeze(1) for t in self._last[where])
        anchor_k, anchor_v = (t.unsqueeze(1).expand_as(k) for t in self._anchor[where])
        previous_k = torch.cat([before_k, k[:, :-1]], dim=1)
        previous_v = torch.cat([before_v, v[:, :-1]], dim=1)
        self._last[where] = (k[:, -1].detach(), v[:, -1].detach())
        if self.attend == "first":
            sources_k, sources_v = [anchor_k], [anchor_v]
        elif self.attend == "previous":
            sources_k, sources_v = [previous_k], [previous_v]
        else:
            sources_k, sources_v = [anchor_k, previous_k], [anchor_v, previous_v]
        key = torch.cat(sources_k, dim=3).reshape(batch, heads, -1, dim)
        value = torch.cat(sources_v, dim=3).reshape(batch, heads, -1, dim)
        return (key.detach(), value.detach()) if self.detach else (key, value)

    def __repr__(self) -> str:
        return f"StreamedCrossFrame(attend={self.attend!r}, detach={self.detach})"


__all__ = ["MODES", "StreamedCrossFrame"]
