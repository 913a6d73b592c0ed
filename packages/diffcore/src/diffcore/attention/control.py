"""Install attention processors on chosen layers for the duration of a ``with`` block.

>>> import torch
>>> from diffusers import UNet2DModel
>>> from diffcore.attention import AttentionProcessor, control
>>> unet = UNet2DModel(sample_size=8, block_out_channels=(8, 16), norm_num_groups=4, layers_per_block=1,
...                    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"))
>>> x = torch.randn(1, 3, 8, 8)
>>> before = unet(x, 10).sample
>>> with control(unet, AttentionProcessor(), select="self") as handle:
...     inside = unet(x, 10).sample
>>> len(handle.layers), torch.equal(inside, before), handle.processors
(4, True, {})

The processors are set with diffusers' ``Attention.set_processor`` (no ``forward`` is patched)
and the previous processor object of every layer is set back on exit, also when the block
raises; nested controls restore in reverse order. On exit each installed diffcore processor is
released (its per-call state freed) and the handle drops its references, so processors made by a
factory can be collected; what a caller-owned block keeps on purpose (the maps of a
:class:`~diffcore.attention.StoreMaps`) stays until its ``clear()``.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffcore.attention.processor import AttentionProcessor, Chain
from diffcore.errors import DiffcoreError
from diffcore.layers import AttentionLayer, attention_layers, network_of

__all__ = ["AttentionControl", "Select", "control"]

LAYER_KINDS = ("self", "cross", "temporal")
BLOCKS = ("in", "down", "mid", "up")


def _as_tuple(value) -> tuple | None:
    if value is None:
        return None
    return tuple(value) if isinstance(value, (list, tuple, set, frozenset)) else (value,)


@dataclass(frozen=True)
class Select:
    """Which attention layers to install on; every criterion given must hold.

    Attributes:
        kind: ``"self"``, ``"cross"``, ``"temporal"`` or a tuple of them.
        resolution: a downsampling factor (1, 2, 4, ...) or a tuple of them.
        block: ``"down"``, ``"mid"``, ``"up"``, ``"in"`` or a tuple of them.
        name: a glob on the layer's module path (:func:`fnmatch.fnmatchcase`), e.g. ``"up_blocks.*attn2"``.
    """

    kind: str | tuple[str, ...] | None = None
    resolution: int | tuple[int, ...] | None = None
    block: str | tuple[str, ...] | None = None
    name: str | None = None

    def __post_init__(self):
        for field, known in (("kind", LAYER_KINDS), ("block", BLOCKS)):
            for value in _as_tuple(getattr(self, field)) or ():
                if value not in known:
                    raise DiffcoreError(f"unknown attention layer {field} {value!r}; expected one of {', '.join(known)}")

    def __call__(self, layer: AttentionLayer) -> bool:
        kinds, resolutions, blocks = _as_tuple(self.kind), _as_tuple(self.resolution), _as_tuple(self.block)
        return (
            (kinds is None or layer.kind in kinds)
            and (resolutions is None or layer.resolution in resolutions)
            and (blocks is None or layer.block in blocks)
            and (self.name is None or fnmatch.fnmatchcase(layer.name, self.name))
        )


def _selector(select) -> Callable[[AttentionLayer], bool]:
    if select is None:
        return Select()
    if isinstance(select, str):
        return Select(kind=select)
    if callable(select):
        return select
    raise DiffcoreError(
        f"select must be a layer kind, a diffcore.attention.Select or a predicate on AttentionLayer, got {type(select).__name__}"
    )


def _is_factory(processor) -> bool:
    return (
        inspect.isfunction(processor)
        or inspect.ismethod(processor)
        or inspect.isclass(processor)
        or isinstance(processor, functools.partial)
    )


def _summary(layers: list[AttentionLayer]) -> str:
    kinds = sorted({layer.kind for layer in layers})
    resolutions = sorted({layer.resolution for layer in layers if layer.resolution is not None})
    return f"{len(layers)} attention layers of kinds {', '.join(kinds)} at resolutions {', '.join(map(str, resolutions)) or 'none'}"


class AttentionControl:
    """The handle of one :func:`control`: a context manager, entered once.

    Attributes:
        network: the torch module the processors are installed on.
        layers: the selected :class:`~diffcore.layers.AttentionLayer` objects.
        processors: layer name -> installed processor while active; empty after exit.
    """

    def __init__(self, target, processor, select=None):
        self.network: torch.nn.Module = network_of(target)
        if isinstance(processor, (list, tuple)):
            processor = Chain(*processor)
        self._processor = processor
        if select is None and isinstance(processor, AttentionProcessor):
            select = processor.default_select
        every = attention_layers(self.network)
        chosen = _selector(select)
        self.layers: tuple[AttentionLayer, ...] = tuple(layer for layer in every if chosen(layer))
        if not self.layers:
            raise DiffcoreError(f"select={select!r} picks no attention layer of {type(self.network).__name__}, which has {_summary(every)}")
        self.processors: dict[str, object] = {}
        self._previous: dict[str, object] = {}
        self._entered = False

    @property
    def active(self) -> bool:
        """Whether the processors are installed now."""
        return bool(self.processors)

    def __enter__(self) -> AttentionControl:
        if self._entered:
            raise DiffcoreError("an attention control is entered once; call diffcore.attention.control again")
        self._entered = True
        if _is_factory(self._processor):
            made = {layer.name: self._processor(layer) for layer in self.layers}
        else:
            made = {layer.name: self._processor for layer in self.layers}
        owners: dict[int, tuple[object, list[AttentionLayer]]] = {}
        for layer in self.layers:
            p = made[layer.name]
            owners.setdefault(id(p), (p, []))[1].append(layer)
        attached = []
        try:
            for p, layers in owners.values():
                if isinstance(p, AttentionProcessor):
                    p.attach(layers)
                    attached.append(p)
        except BaseException:
            for p in attached:
                p.release()
            raise
        self._previous = {layer.name: layer.module.get_processor() for layer in self.layers}
        self.processors = made
        try:
            for layer in self.layers:
                layer.module.set_processor(made[layer.name])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            for layer in reversed(self.layers):
                layer.module.set_processor(self._previous[layer.name])
        finally:
            released = set()
            for p in self.processors.values():
                if isinstance(p, AttentionProcessor) and id(p) not in released:
                    released.add(id(p))
                    p.release()
            self.processors, self._previous, self._processor = {}, {}, None

    def __repr__(self) -> str:
        return f"AttentionControl({type(self.network).__name__}, {len(self.layers)} layers, {'active' if self.active else 'inactive'})"


def control(target, processor, select=None) -> AttentionControl:
    """Install ``processor`` on the selected attention layers of ``target`` inside a ``with`` block.

    Args:
        target: a diffcore prior built from diffusers (``DiffusersUNetPrior``,
            ``StableDiffusionPrior``, or a wrapper of one) or a diffusers network
            (:func:`diffcore.layers.network_of`).
        processor: one processor object for every selected layer (a diffcore
            :class:`~diffcore.attention.AttentionProcessor` or any diffusers attention processor), a
            list of diffcore processors (run as a :class:`~diffcore.attention.Chain`), or a factory
            ``f(layer) -> processor`` called once per selected layer with its
            :class:`~diffcore.layers.AttentionLayer` (a function, method, class or ``functools.partial``).
        select: which layers: a kind (``"self"``, ``"cross"``, ``"temporal"``), a :class:`Select`
            (kind, resolution, block, name glob), or a predicate on ``AttentionLayer``; default the
            processor's ``default_select`` (all layers for factories and diffusers processors).
            Selecting no layer is a :class:`~diffcore.errors.DiffcoreError`.

    Returns the :class:`AttentionControl` handle (a context manager).
    """
    return AttentionControl(target, processor, select)
