"""Prompt-to-prompt attention replacement (Hertz et al. 2022, Sec. 3.2, "Word Swap").

The edited (target) generation keeps the source's layout when its cross-attention maps are
replaced by the source's: ``M_target <- M_source`` for the first steps (the paper's ``tau``,
a fraction of the denoising steps), then left alone so that the new words can change the
details. The output is ``M_source V_target``: where to look comes from the source, what is seen
from the target's prompt.

The source maps come either from the same batch (the source and target branches denoised
together, as in the paper) or from a :class:`~diffcore.attention.StoreMaps` record made during
an earlier pass, e.g. of an inversion, as FateZero (Qi et al. 2023) and Video-P2P (Liu et al.
2023) fuse the maps of the inversion into the edit; a record on disk is read one map at a time,
so the fused pass never holds more than the current map of the record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from diffcore.attention.processor import AttentionCall, AttentionProcessor, step_filter
from diffcore.errors import DiffcoreError

__all__ = ["ReplaceMaps"]


class ReplaceMaps(AttentionProcessor):
    """Replace the target's attention maps by the source's (cross-attention layers by default).

    Args:
        steps: the steps at which to replace: None for all, a container such as ``range(40)``
            (the first 80 % of 50 steps, the paper's ``tau = 0.8``), or a predicate.
        source: None for in-batch branches, or a :class:`~diffcore.attention.StoreMaps` holding
            the source maps recorded in an earlier pass.
        targets: in-batch only: the batch is a sequence of groups, each one source followed by
            ``targets`` targets (classifier-free guidance's doubled batch is two such groups).
        frames: in-batch only: each branch is ``frames`` consecutive items (the frames of a video).
        items: with a record: the batch items whose maps are replaced (default all); the recorded
            map must have as many items, or one (broadcast).
        source_step: with a record: the recorded step used at a step (default the same step;
            e.g. ``lambda s: 49 - s`` for a record of a 50-step inversion that ran the other way).
        tokens: replace only these key positions (columns of the maps); default all.
    """

    default_select = "cross"

    def __init__(
        self,
        *,
        steps=None,
        source=None,
        targets: int = 1,
        frames: int = 1,
        items: Sequence[int] | None = None,
        source_step: Callable[[int], int] | None = None,
        tokens: Sequence[int] | None = None,
    ):
        super().__init__()
        if targets < 1 or frames < 1:
            raise DiffcoreError(f"targets and frames must be positive, got targets={targets}, frames={frames}")
        if source is None and (items is not None or source_step is not None):
            raise DiffcoreError("items and source_step apply to a recorded source; pass source=StoreMaps(...)")
        if source is not None and not hasattr(source, "map"):
            raise DiffcoreError(f"source must be a StoreMaps record, got {type(source).__name__}")
        self._wanted = step_filter(steps)
        self.source, self.targets, self.frames = source, int(targets), int(frames)
        self.items = None if items is None else [int(i) for i in items]
        self.source_step = source_step
        self.tokens = None if tokens is None else [int(t) for t in tokens]

    def needs_probabilities(self, call: AttentionCall) -> bool:
        return bool(self._wanted(call.step))

    def _from_record(self, call: AttentionCall, probabilities: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        step = call.step if self.source_step is None else int(self.source_step(call.step))
        recorded = self.source.map(call.layer.name, step).to(device=probabilities.device, dtype=probabilities.dtype)
        if recorded.ndim == probabilities.ndim - 1:  # averaged over heads
            recorded = recorded.unsqueeze(1)
        items = list(range(probabilities.shape[0])) if self.items is None else self.items
        shape, want = tuple(recorded.shape), tuple(probabilities.shape)
        if recorded.ndim != len(want) or shape[0] not in (1, len(items)) or shape[1] not in (1, want[1]) or shape[2:] != want[2:]:
            raise DiffcoreError(
                f"{call.layer.name} at step {call.step}: the recorded map has shape {shape}; expected ({len(items)} or 1, {want[1]} or "
                f"1, {want[2]}, {want[3]})"
            )
        return recorded.expand(len(items), *want[1:]), items

    def edit_probabilities(self, call: AttentionCall, probabilities: torch.Tensor) -> torch.Tensor:
        if self.source is not None:
            replacement, items = self._from_record(call, probabilities)
            out = probabilities.clone()
            if self.tokens is None:
                out[items] = replacement
            else:
                target = out[items]
                target[..., self.tokens] = replacement[..., self.tokens]
                out[items] = target
            return out
        batch, rest = probabilities.shape[0], probabilities.shape[1:]
        group = (1 + self.targets) * self.frames
        if batch % group:
            raise DiffcoreError(
                f"{call.layer.name}: a batch of {batch} is not whole groups of one source and {self.targets} target(s) of {self.frames} "
                "frame(s)"
            )
        branches = probabilities.reshape(batch // group, 1 + self.targets, self.frames, *rest)
        source = branches[:, :1].expand(-1, self.targets, -1, *rest)
        out = branches.clone()
        if self.tokens is None:
            out[:, 1:] = source
        else:
            out[:, 1:, ..., self.tokens] = source[..., self.tokens]
        return out.reshape(batch, *rest)

    def __repr__(self) -> str:
        return f"ReplaceMaps({'record' if self.source is not None else f'in-batch, targets={self.targets}, frames={self.frames}'})"
