"""The attention processor that diffcore's building blocks extend.

:class:`AttentionProcessor` computes a diffusers ``Attention`` layer in the order diffusers'
default ``AttnProcessor2_0`` does: spatial norm (with ``temb``), flattening of 4-D feature maps to
sequences, the attention mask, group norm, the projections ``to_q`` / ``to_k`` / ``to_v`` (keys
and values from the normed encoder states when there are any), the split into heads, ``norm_q``
/ ``norm_k``, scaled dot-product attention, ``to_out``, the feature map's shape back, the
residual and ``rescale_output_factor``. With no extension active it runs the same operations on
the same tensors, so the network's output is bit-identical to the one without a processor.

Extension points, each given the :class:`AttentionCall` (which layer, which step):

- :meth:`~AttentionProcessor.edit_keys_values`: change the keys and values (per head,
  ``(B, heads, L, head_dim)``) before attention, e.g. take them from other batch items;
- :meth:`~AttentionProcessor.needs_probabilities` and
  :meth:`~AttentionProcessor.edit_probabilities`: when a block needs them, the probabilities
  ``P = softmax(Q K^T / sqrt(head_dim) + mask)`` are computed explicitly (Vaswani et al. 2017,
  eq. 1), passed through ``edit_probabilities`` (to observe or change them), and multiplied by
  ``V``. The explicit product differs from the fused kernel by rounding only (about 1e-7
  relative in float32).

A step is one call of the layer: the processor counts the calls of each layer from 0 since it
was installed by :func:`diffcore.attention.control`, which is also what tells it which
:class:`~diffcore.layers.AttentionLayer` a call belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from diffcore.errors import DiffcoreError
from diffcore.layers import AttentionLayer

__all__ = ["AttentionCall", "AttentionProcessor", "Chain", "attention_probabilities", "step_filter"]


@dataclass(frozen=True)
class AttentionCall:
    """One call of an attention layer: the layer and the step (its 0-based call count)."""

    layer: AttentionLayer
    step: int


def step_filter(steps: Container[int] | Callable[[int], bool] | None) -> Callable[[int], bool]:
    """A predicate on steps from None (every step), a container of steps or a predicate.

    >>> keep = step_filter(range(3))
    >>> [keep(s) for s in (0, 2, 3)]
    [True, True, False]
    """
    if steps is None:
        return lambda step: True
    if callable(steps):
        return steps
    if isinstance(steps, Container):
        return lambda step: step in steps
    raise DiffcoreError(f"steps must be None, a container of step numbers or a predicate, got {type(steps).__name__}")


def attention_probabilities(
    query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None = None, scale: float | None = None
) -> torch.Tensor:
    """``softmax(Q K^T * scale + mask)`` over keys, shape ``(B, heads, L_q, L_k)``.

    ``scale`` defaults to ``1 / sqrt(head_dim)`` as in scaled dot-product attention; a boolean
    ``mask`` keeps the keys where it is True, a float mask is added to the scores. Half-precision
    inputs are computed in float32 and returned in their dtype.
    """
    dtype = query.dtype
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    scores = query.to(compute) @ key.to(compute).transpose(-1, -2)
    scores = scores * (query.shape[-1] ** -0.5 if scale is None else scale)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.to(compute)
    return scores.softmax(dim=-1).to(dtype)


class AttentionProcessor:
    """A diffusers attention processor with extension points (see the module docstring).

    Install it with :func:`diffcore.attention.control`; on its own it computes plain attention.
    Subclasses override the ``edit_*`` methods and :meth:`release`, and set ``default_select``
    (the layers :func:`~diffcore.attention.control` picks when given no ``select``).
    """

    #: the layers to install on when ``control`` gets no ``select``: a kind, a ``Select`` or None (all)
    default_select = None

    def __init__(self):
        self._layers: dict[int, AttentionLayer] = {}
        self._calls: dict[str, int] = {}

    # -- lifecycle (called by control) -----------------------------------------------------
    @property
    def attached(self) -> bool:
        """Whether an active :func:`~diffcore.attention.control` has installed this processor."""
        return bool(self._layers)

    def attach(self, layers: Iterable[AttentionLayer]) -> None:
        """Start serving ``layers``; step counts start at 0."""
        if self._layers:
            raise DiffcoreError(f"{type(self).__name__} is already installed by an active attention control; use one object per control")
        layers = list(layers)
        self._layers = {id(layer.module): layer for layer in layers}
        self._calls = {layer.name: 0 for layer in layers}

    def release(self) -> None:
        """Stop serving layers and free per-call state; results a block keeps (stored maps) stay."""
        self._layers, self._calls = {}, {}

    # -- extension points ------------------------------------------------------------------
    def edit_keys_values(
        self, call: AttentionCall, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``(B, heads, L_k, head_dim)`` to attend to; default: unchanged."""
        return key, value

    def needs_probabilities(self, call: AttentionCall) -> bool:
        """Whether this call must compute the probabilities explicitly; default: no."""
        return False

    def edit_probabilities(self, call: AttentionCall, probabilities: torch.Tensor) -> torch.Tensor:
        """Observe or change the probabilities ``(B, heads, L_q, L_k)``; default: unchanged."""
        return probabilities

    # -- the computation -------------------------------------------------------------------
    def _call_of(self, attn) -> AttentionCall:
        layer = self._layers.get(id(attn))
        if layer is None:
            raise DiffcoreError(
                f"{type(self).__name__} runs on a layer it was not installed on; install it with diffcore.attention.control"
            )
        step = self._calls[layer.name]
        self._calls[layer.name] = step + 1
        return AttentionCall(layer=layer, step=step)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        call = self._call_of(attn)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        batch, sequence_length, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        length = key.shape[2]
        key, value = self.edit_keys_values(call, query, key, value)
        if attention_mask is not None and key.shape[2] != length:
            raise DiffcoreError(
                f"{type(self).__name__} changed the number of keys of {call.layer.name} from {length} to {key.shape[2]}, which its "
                "attention mask does not allow"
            )
        # diffusers' default processor relies on the kernel's default scale; pass one only where the layer differs
        scale = None if attn.scale == head_dim**-0.5 else attn.scale
        if self.needs_probabilities(call):
            probabilities = self.edit_probabilities(call, attention_probabilities(query, key, attention_mask, scale))
            hidden_states = probabilities.to(value.dtype) @ value
        elif scale is None:
            hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)
        else:
            hidden_states = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False, scale=scale
            )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Chain(AttentionProcessor):
    """Several processors on the same layers, applied in order.

    Keys and values pass through each processor's ``edit_keys_values`` in turn; probabilities
    are computed explicitly when any processor needs them and pass through each
    ``edit_probabilities`` in turn (so a :class:`~diffcore.attention.StoreMaps` placed after a
    :class:`~diffcore.attention.ReplaceMaps` records the replaced maps). The chain counts the
    steps; its members do not need to be installed themselves.
    """

    def __init__(self, *processors: AttentionProcessor):
        super().__init__()
        for p in processors:
            if not isinstance(p, AttentionProcessor):
                raise DiffcoreError(f"Chain takes diffcore AttentionProcessor objects, got {type(p).__name__}")
        if not processors:
            raise DiffcoreError("Chain needs at least one processor")
        self.processors = tuple(processors)
        self.default_select = next((p.default_select for p in processors if p.default_select is not None), None)

    def release(self) -> None:
        super().release()
        for p in self.processors:
            p.release()

    def edit_keys_values(self, call, query, key, value):
        for p in self.processors:
            key, value = p.edit_keys_values(call, query, key, value)
        return key, value

    def needs_probabilities(self, call) -> bool:
        return any(p.needs_probabilities(call) for p in self.processors)

    def edit_probabilities(self, call, probabilities):
        for p in self.processors:
            if p.needs_probabilities(call):
                probabilities = p.edit_probabilities(call, probabilities)
        return probabilities

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.processors))})"
