"""``fatezero``: attention maps recorded during the inversion and fused into the edit (Qi et al. 2023).

FateZero inverts the video with DDIM and keeps the attention maps of every inversion step; while
editing, the self-attention maps of the first ``replace`` share of the edit steps are the
inversion's (Sec. 4.1, "attention map fusing"), which keeps the source's structure and motion,
and its self-attention is spatio-temporal (each frame attends to the first and the previous
frame, here :class:`~diff_video.editing.streamed.StreamedCrossFrame`). The map of an edit step at
time ``t`` is the inversion's at the same ``t`` (``ReplaceMaps(source_step=...)``: the inversion
ran the other way). With class-conditional priors there are no cross-attention maps, so the
cross-attention blending of the paper (its masks come from the edited words) has nothing to act
on and only the self-attention fusion remains.

Memory: FateZero's reference code keeps every map of every frame in memory (about 100 GB for a
long video). Here each chunk's maps go to a :class:`~diffcore.attention.StoreMaps` folder in
float16 chunks while it is inverted, the edit of that chunk reads them back one map at a time
(:class:`~diffcore.attention.ReplaceMaps` from a record), and the folder is emptied before the
next chunk: at most one chunk's maps on disk and one map in memory. The prior needs
self-attention layers.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from diff_video.editing.cross_frame import CrossFrameRun
from diff_video.editing.engine import Editor
from diff_video.editing.inversion import edit_times
from diffcore.attention import ReplaceMaps, StoreMaps
from diffcore.errors import DiffcoreError


def recorded_step(edit_step: int, steps: int, refine: int) -> int:
    """The inversion call whose map belongs to edit step ``edit_step`` of ``steps`` (same time, see the module docstring).

    With ``refine`` fixed-point iterations the last call of inversion step ``k`` is at its upper
    time; without them each call is at its step's lower time and the top time has no call, so the
    nearest one is used.

    >>> [recorded_step(j, 3, 1) for j in range(3)]
    [5, 3, 1]
    >>> [recorded_step(j, 3, 0) for j in range(3)]
    [2, 2, 1]
    """
    if refine:
        return (steps - 1 - edit_step) * (1 + refine) + refine
    return min(steps - edit_step, steps - 1)


class FateZeroRun(CrossFrameRun):
    """Per chunk: a map record written during the inversion, read during the edit, then deleted."""

    def __init__(self, attend: str, replace: float, prior, settings, folder):
        super().__init__(attend)
        self._steps = len(edit_times(prior.schedule, settings.steps, settings.strength)) - 1
        self._temporary = None
        if folder is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="fatezero-maps-")
            folder = self._temporary.name
        self.folder = Path(folder)
        self.refine = settings.refine
        self.replace = float(replace)
        self.store: StoreMaps | None = None
        self._chunk = 0

    def inversion(self, frames):
        r = self.refine
        self.store = StoreMaps(self.folder / f"chunk-{self._chunk:05d}", steps=lambda s: s % (1 + r) == r, dtype=torch.float16)
        return [super().inversion(frames), self.store]

    def edit(self, frames, groups):
        steps = self._steps
        fused = range(round(self.replace * steps))
        replacing = [
            ReplaceMaps(
                source=self.store,
                steps=fused,
                source_step=lambda j: recorded_step(j, steps, self.refine),
                items=range(g * frames, (g + 1) * frames),
            )
            for g in range(groups)
        ]
        return [super().edit(frames, groups), *replacing]

    def chunk_done(self):
        if self.store is not None:
            self.store.clear()
            self.store.folder.rmdir()
        self.store = None
        self._chunk += 1

    def close(self):
        super().close()
        if self.store is not None:
            self.store.clear()
        if self._temporary is not None:
            self._temporary.cleanup()


@dataclass(frozen=True, repr=False)
class FateZeroEditor(Editor):
    """Inversion maps fused into the first ``replace`` share of the edit steps (see the module docstring).

    ``folder``: where the per-chunk map records go (default a temporary folder, removed at the end).
    """

    replace: float = 0.6
    attend: str = "first+previous"
    folder: str | None = None
    name = "fatezero"
    needs = "self"

    def __post_init__(self):
        if not 0.0 <= float(self.replace) <= 1.0:
            raise DiffcoreError(f"replace is the share of edit steps with fused maps, in [0, 1]; got {self.replace}")

    def start(self, prior, settings):
        return FateZeroRun(self.attend, self.replace, prior, settings, self.folder)


__all__ = ["FateZeroEditor", "FateZeroRun", "recorded_step"]
