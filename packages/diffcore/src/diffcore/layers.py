"""The layers of a diffusers network, classified once for everything that selects them.

Attention control (:mod:`diffcore.attention`) installs processors on some attention layers;
fine-tuning (:func:`select_parameters`) trains the parameters of some layers. Both ask the same
questions -- is this attention layer self-attention, cross-attention or temporal, at which
resolution does it run, in which part of the UNet -- and both get their answers here.

Kinds of attention layer (diffusers' ``Attention`` modules):

- ``"temporal"``: any layer under a temporal module (:func:`is_temporal`), whatever its keys;
  these attend across frames (UNet3D's ``temp_attentions`` and ``transformer_in``, AnimateDiff's
  ``motion_modules``, and the temporal layers diffcore inserts, whose names contain
  ``temporal``).
- ``"cross"``: keys and values come from the encoder states (diffusers sets
  ``is_cross_attention`` when the layer is built with a ``cross_attention_dim``): Stable
  Diffusion's ``attn2``.
- ``"self"``: every other attention layer (``attn1``; the attention blocks of ``UNet2DModel``).

Resolution is the downsampling factor of the feature map a layer sees, read from the block
structure rather than guessed from channel counts: the first down block runs at factor 1 and
each down block that has a downsampler (``downsamplers``, or ``resnet_down`` in the skip blocks)
doubles the factor for the blocks after it; the mid block runs at the factor the down path ends
at; the up path starts there and each up block with an upsampler (``upsamplers`` or
``resnet_up``) halves the factor for the blocks after it. UNet3D's ``transformer_in`` runs on
the input of the down path (block ``"in"``, factor 1). Layers outside ``down_blocks``,
``mid_block``, ``up_blocks`` and ``transformer_in`` have neither block nor resolution.

>>> import torch
>>> from diffcore.layers import is_temporal
>>> is_temporal("down_blocks.0.motion_modules.0.transformer_blocks.0.attn1")
True
>>> is_temporal("down_blocks.0.attentions.0.transformer_blocks.0.attn1")
False
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

import torch

from diffcore.errors import DiffcoreError

__all__ = [
    "KINDS",
    "TEMPORAL_MODULES",
    "AttentionLayer",
    "attention_layers",
    "is_temporal",
    "network_of",
    "select_parameters",
]

#: Module names (path segments) that hold temporal layers in diffusers' video UNets.
TEMPORAL_MODULES = frozenset({"temp_attentions", "temp_convs", "transformer_in", "motion_modules"})

#: The kinds :func:`select_parameters` knows, besides ``pattern:<glob>`` and ``regex:<expression>``.
KINDS = ("all", "cross-attention", "self-attention", "temporal", "all-but-cross-attention")


def is_temporal(name: str) -> bool:
    """Whether the module or parameter path ``name`` lies under a temporal module.

    True when a dotted segment is one of :data:`TEMPORAL_MODULES` or contains ``temporal``.
    """
    return any(part in TEMPORAL_MODULES or "temporal" in part for part in name.split("."))


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer of a network.

    Attributes:
        name: the module path in the network (``"up_blocks.1.attentions.0.transformer_blocks.0.attn2"``).
        module: the diffusers ``Attention`` module.
        kind: ``"self"``, ``"cross"`` or ``"temporal"``.
        resolution: the downsampling factor of the feature map it sees (1, 2, 4, ...), or None
            outside the UNet's blocks.
        block: ``"down"``, ``"mid"``, ``"up"``, ``"in"`` (UNet3D's ``transformer_in``) or None.
    """

    name: str
    module: torch.nn.Module
    kind: str
    resolution: int | None
    block: str | None


def network_of(obj) -> torch.nn.Module:
    """The torch module behind ``obj``: a module itself, or a diffcore prior's network.

    A prior's network is its ``network`` attribute (``unet`` for adapters that predate it);
    wrappers such as ``Guided`` and ``Conditioned`` are looked through.
    """
    from diffcore.priors.wrapper import PriorWrapper

    seen = obj
    while isinstance(seen, PriorWrapper):
        seen = seen.prior
    if isinstance(seen, torch.nn.Module):
        return seen
    for attribute in ("network", "unet"):
        module = getattr(seen, attribute, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise DiffcoreError(
        f"prior {type(obj).__name__} has no network: attention control needs a diffusers network (a prior with a 'network' module, or "
        "the module itself)"
    )


def _changes_size(block, attributes: tuple[str, ...]) -> bool:
    return any(getattr(block, attribute, None) is not None for attribute in attributes)


def _block_places(network: torch.nn.Module) -> dict[str, tuple[str, int]]:
    """Module-path prefix -> (block, resolution) for the blocks of a UNet, from its down/up samplers."""
    places: dict[str, tuple[str, int]] = {}
    if hasattr(network, "transformer_in"):
        places["transformer_in"] = ("in", 1)
    factor = 1
    for i, block in enumerate(getattr(network, "down_blocks", ())):
        places[f"down_blocks.{i}"] = ("down", factor)
        if _changes_size(block, ("downsamplers", "resnet_down")):
            factor *= 2
    if getattr(network, "mid_block", None) is not None:
        places["mid_block"] = ("mid", factor)
    for i, block in enumerate(getattr(network, "up_blocks", ())):
        places[f"up_blocks.{i}"] = ("up", factor)
        if _changes_size(block, ("upsamplers", "resnet_up")):
            factor = max(factor // 2, 1)
    return places


def _place(name: str, places: dict[str, tuple[str, int]]) -> tuple[str | None, int | None]:
    parts = name.split(".")
    for prefix in (".".join(parts[:2]), parts[0]):
        if prefix in places:
            return places[prefix]
    return None, None


def _attention_class():
    try:
        from diffusers.models.attention_processor import Attention
    except ImportError as exc:
        raise ImportError('diffcore.layers needs diffusers to classify attention layers: pip install "diffcore[diffusers]"') from exc
    return Attention


def attention_layers(network) -> list[AttentionLayer]:
    """Every diffusers ``Attention`` layer of ``network`` (a module or a prior), in module order.

    >>> import tempfile
    >>> from diffusers import UNet2DConditionModel
    >>> from diffcore.testing import save_tiny_stable_diffusion
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     unet = UNet2DConditionModel.from_pretrained(save_tiny_stable_diffusion(folder), subfolder="unet")
    >>> [(layer.kind, layer.block, layer.resolution) for layer in attention_layers(unet)][:2]
    [('self', 'down', 1), ('cross', 'down', 1)]
    """
    network = network_of(network)
    attention = _attention_class()
    places = _block_places(network)
    layers = []
    for name, module in network.named_modules():
        if not isinstance(module, attention):
            continue
        if is_temporal(name):
            kind = "temporal"
        else:
            kind = "cross" if module.is_cross_attention else "self"
        block, resolution = _place(name, places)
        layers.append(AttentionLayer(name=name, module=module, kind=kind, resolution=resolution, block=block))
    return layers


def _under(name: str, prefixes: set[str]) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:i]) in prefixes for i in range(1, len(parts)))


def _matcher(kind: str, network: torch.nn.Module):
    """A predicate on parameter names for ``kind``, or None for an unknown kind."""
    if kind.startswith("pattern:"):
        glob = kind[len("pattern:") :]
        return lambda name: fnmatch.fnmatchcase(name, glob)
    if kind.startswith("regex:"):
        try:
            expression = re.compile(kind[len("regex:") :])
        except re.error as exc:
            raise DiffcoreError(f"parameter selection {kind!r} is not a valid regular expression ({exc})") from exc
        return lambda name: expression.search(name) is not None
    if kind == "all":
        return lambda name: True
    if kind == "temporal":
        return is_temporal
    if kind not in KINDS:
        return None
    layers = attention_layers(network)
    cross = {layer.name for layer in layers if layer.kind == "cross"}
    if kind == "cross-attention":
        return lambda name: _under(name, cross)
    if kind == "all-but-cross-attention":
        return lambda name: not _under(name, cross)
    own = {layer.name for layer in layers if layer.kind == "self"}
    return lambda name: _under(name, own)


def select_parameters(network, kind: str) -> list[tuple[str, torch.nn.Parameter]]:
    """The named parameters of ``network`` (a module or a prior) that ``kind`` selects.

    Kinds:

    - ``all``: every parameter;
    - ``cross-attention``: the parameters of the cross-attention layers (their ``to_q``,
      ``to_k``, ``to_v``, ``to_out`` and norms; keys and values from the encoder states);
    - ``self-attention``: those of the other non-temporal attention layers;
    - ``temporal``: every parameter under a temporal module (attention, convolutions, norms);
    - ``all-but-cross-attention``: every parameter outside the cross-attention layers;
    - ``pattern:<glob>``: parameter names matching a shell-style glob in full
      (:func:`fnmatch.fnmatchcase`; ``*`` also crosses dots), e.g. ``pattern:*attn2.to_[kv].*``;
    - ``regex:<expression>``: parameter names in which a Python regular expression matches
      (:func:`re.search`), e.g. ``regex:attn[12]\\.to_q``.

    Parameters come in ``named_parameters`` order (shared ones once), whether or not they
    require gradients. A kind that selects nothing on this network raises a
    :class:`~diffcore.errors.DiffcoreError` naming the kinds that do.
    """
    network = network_of(network)
    matches = _matcher(kind, network)
    if matches is None:
        raise DiffcoreError(
            f"unknown parameter selection {kind!r}; expected one of {', '.join(KINDS)}, pattern:<glob> or regex:<expression>"
        )
    named = list(network.named_parameters())
    chosen = [(name, p) for name, p in named if matches(name)]
    if not chosen:
        names = [name for name, _ in named]
        useful = [k for k in KINDS if any(map(_matcher(k, network), names))]
        raise DiffcoreError(
            f"parameter selection {kind!r} selects nothing on {type(network).__name__}; kinds that select something here: "
            f"{', '.join(useful) or 'none'}"
        )
    return chosen
