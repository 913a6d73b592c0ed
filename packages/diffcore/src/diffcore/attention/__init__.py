"""Attention control: processors installed on a diffusers prior's attention layers for one call.

The mechanism is :func:`control`, a context manager that installs a processor on the layers
picked by kind, resolution, block and name (the classification of :mod:`diffcore.layers`) and
restores the previous processors on exit. The building blocks are processors that extend
:class:`AttentionProcessor`, which computes attention exactly as diffusers' default processor
does until an extension is active:

- :class:`StoreMaps`: record attention probabilities per layer and step, in memory or on disk;
- :class:`CrossFrameAttention`: keys and values from other frames of a video (Text2Video-Zero,
  Pix2Video, sparse-causal attention);
- :class:`ReweightTokens` and :class:`ReplaceMaps`: prompt-to-prompt's re-weighting and
  replacement of cross-attention maps (Hertz et al. 2022), the latter also from a record;
- :class:`Chain`: several of them on the same layers.

Importing this package does not import diffusers; :func:`control` does, through
:func:`diffcore.layers.attention_layers`.
"""

from diffcore.attention.control import AttentionControl, Select, control
from diffcore.attention.cross_frame import CrossFrameAttention
from diffcore.attention.processor import AttentionCall, AttentionProcessor, Chain, attention_probabilities, step_filter
from diffcore.attention.replace import ReplaceMaps
from diffcore.attention.reweight import ReweightTokens
from diffcore.attention.store import StoreMaps

__all__ = [
    "AttentionCall",
    "AttentionControl",
    "AttentionProcessor",
    "Chain",
    "CrossFrameAttention",
    "ReplaceMaps",
    "ReweightTokens",
    "Select",
    "StoreMaps",
    "attention_probabilities",
    "control",
    "step_filter",
]
