"""``per-frame``: every frame edited alone, the baseline of zero-shot video editing.

Each frame is DDIM-inverted under the source condition and denoised under the target one
(inversion-based image editing, e.g. Mokady et al. 2023 without the null-text step), with nothing
tying it to the other frames: the image model's answer for each frame on its own. Frames are
still batched (``chunk`` at a time) for speed; the result does not depend on the chunking.
Any image prior will do, with or without attention layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from diff_video.editing.engine import Editor


@dataclass(frozen=True, repr=False)
class PerFrameEditor(Editor):
    """Each frame inverted and edited on its own (see the module docstring)."""

    name = "per-frame"
    needs = None


__all__ = ["PerFrameEditor"]
