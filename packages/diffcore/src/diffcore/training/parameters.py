"""Which parameters train: selection by kind (:func:`train_only`) and the frozen copy of a prior.

The layer classification (self-, cross-attention, temporal, by name pattern) is
:func:`diffcore.layers.select_parameters`; this module only applies it to ``requires_grad``.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
>>> [name for name, _ in train_only(net, "pattern:1.*")]
['1.weight', '1.bias']
>>> [p.requires_grad for p in net.parameters()]
[False, False, True, True]
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch

from diffcore.errors import DiffcoreError
from diffcore.layers import network_of, select_parameters


def train_only(prior, *kinds: str) -> list[tuple[str, torch.nn.Parameter]]:
    """Make the parameters that ``kinds`` select trainable and freeze every other one; return the selected.

    ``prior`` is a :class:`~diffcore.protocols.Trainable` prior or a module; each kind is one of
    :data:`diffcore.layers.KINDS`, ``pattern:<glob>`` or ``regex:<expression>``
    (:func:`diffcore.layers.select_parameters`), and the selection is their union. The network is
    put in training mode. Returns ``(name, parameter)`` pairs in the network's order, what
    :func:`diffcore.training.fit` takes.
    """
    if not kinds:
        raise DiffcoreError("train_only needs at least one kind, e.g. 'all' or 'cross-attention'")
    network = network_of(prior)
    chosen: dict[str, torch.nn.Parameter] = {}
    for kind in kinds:
        chosen.update(select_parameters(network, kind))
    network.requires_grad_(False)
    for p in chosen.values():
        p.requires_grad_(True)
    network.train()
    return [(name, p) for name, p in network.named_parameters() if name in chosen]


def trainable_parameters(prior) -> list[tuple[str, torch.nn.Parameter]]:
    """The ``(name, parameter)`` pairs of the prior's network that require gradients."""
    return [(name, p) for name, p in network_of(prior).named_parameters() if p.requires_grad]


def frozen_copy(prior):
    """A deep copy of ``prior`` whose network is in eval mode with ``requires_grad`` off.

    The teacher of concept erasure (Gandikota et al. 2023) and the base model of variational
    score distillation (Wang et al. 2023) are such copies: training the original leaves them
    unchanged. Nothing mutable is shared (network, autoencoder, text encoder and caches are all
    copied), so the copy costs the prior's memory once more.
    """
    twin = copy.deepcopy(prior)
    network_of(twin).eval().requires_grad_(False)
    return twin


def named_tensors(tensors: Iterable) -> list[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` pairs from a module (its trainable parameters), a dict, pairs, or tensors (named by position)."""
    if isinstance(tensors, torch.nn.Module):
        return [(n, p) for n, p in tensors.named_parameters() if p.requires_grad]
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    if all(isinstance(item, torch.Tensor) for item in items):
        pairs = [(str(i), t) for i, t in enumerate(items)]
    elif all(isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], torch.Tensor) for item in items):
        pairs = [(str(n), t) for n, t in items]
    else:
        raise DiffcoreError("expected a module, tensors, or (name, tensor) pairs")
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise DiffcoreError("parameter names must be unique")
    if len({id(t) for _, t in pairs}) != len(pairs):
        raise DiffcoreError("the same tensor is listed twice")
    return pairs
