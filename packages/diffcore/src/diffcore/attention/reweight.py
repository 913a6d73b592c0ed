"""Prompt-to-prompt attention re-weighting (Hertz et al. 2022, Sec. 3.2, "Attention Re-weighting").

To strengthen or weaken how much a word affects the image, the cross-attention map of its token
``j`` is scaled by a factor ``c``: ``M'_{i,j} = c M_{i,j}`` for every pixel ``i``, the other
tokens' maps unchanged (the paper does not renormalise, and neither does this). The output is
``M' V``: the token's value enters with weight ``c`` times its attention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from diffcore.attention.processor import AttentionCall, AttentionProcessor, step_filter
from diffcore.errors import DiffcoreError

__all__ = ["ReweightTokens"]


class ReweightTokens(AttentionProcessor):
    """Scale the attention probabilities of chosen tokens (cross-attention layers by default).

    Args:
        factors: token index (position in the encoder sequence, e.g. in CLIP's 77) -> factor.
        items: the batch items to edit (e.g. only the target branch); default all.
        steps: the steps to edit (None for all, a container, or a predicate).
    """

    default_select = "cross"

    def __init__(self, factors: Mapping[int, float], *, items: Sequence[int] | None = None, steps=None):
        super().__init__()
        if not isinstance(factors, Mapping) or not factors:
            raise DiffcoreError("ReweightTokens needs factors as a non-empty mapping token index -> factor")
        self.factors = {int(k): float(v) for k, v in factors.items()}
        self.items = None if items is None else [int(i) for i in items]
        self._wanted = step_filter(steps)

    def needs_probabilities(self, call: AttentionCall) -> bool:
        return bool(self._wanted(call.step))

    def edit_probabilities(self, call: AttentionCall, probabilities: torch.Tensor) -> torch.Tensor:
        batch, length = probabilities.shape[0], probabilities.shape[-1]
        bad = [k for k in self.factors if not -length <= k < length]
        if bad:
            raise DiffcoreError(f"{call.layer.name} attends to {length} tokens; token indices {bad} are out of range")
        weights = torch.ones(length, dtype=probabilities.dtype, device=probabilities.device)
        for token, factor in self.factors.items():
            weights[token] = factor
        if self.items is None:
            return probabilities * weights
        if any(not -batch <= i < batch for i in self.items):
            raise DiffcoreError(f"{call.layer.name}: items {self.items} are not all in a batch of {batch}")
        out = probabilities.clone()
        out[self.items] = probabilities[self.items] * weights
        return out

    def __repr__(self) -> str:
        return f"ReweightTokens({self.factors})"
