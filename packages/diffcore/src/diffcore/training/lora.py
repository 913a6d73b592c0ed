"""Low-rank adapters (LoRA, Hu et al. 2022) on a prior's attention projections, through peft.

Each chosen projection ``W`` (``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of the selected
attention layers) becomes ``W + (alpha / r) B A`` with ``A`` (r x in) drawn at random and ``B``
(out x r) zero, so the adapted network starts out equal to the base one; only ``A`` and ``B``
train. Turning the adapters off gives the base network back from the same module, which is how
variational score distillation (Wang et al. 2023, ProlificDreamer) keeps the pretrained and the
fine-tuned score in one network. Layers are chosen with the kinds of
:func:`diffcore.layers.select_parameters` (a projection is chosen when its weight is selected).

>>> import tempfile, torch
>>> from diffcore.adapters.stable_diffusion import load_stable_diffusion
>>> from diffcore.testing import save_tiny_stable_diffusion
>>> with tempfile.TemporaryDirectory() as folder:
...     prior = load_stable_diffusion(save_tiny_stable_diffusion(folder))
>>> trained = add_lora(prior, rank=2, target="cross-attention")
>>> sorted({name.rsplit(".", 3)[-3] for name, _ in trained})  # lora_A / lora_B of each projection
['lora_A', 'lora_B']
>>> lora_settings(prior)["rank"], len(lora_settings(prior)["target_modules"])
(2, 16)
>>> with lora_disabled(prior):  # the base model, from the same network
...     lora_settings(prior)["enabled"]
False
"""

from __future__ import annotations

import contextlib

import torch

from diffcore.errors import DiffcoreError
from diffcore.layers import attention_layers, network_of, select_parameters

ADAPTER = "default"
PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


def _peft():
    try:
        import peft
    except ImportError as exc:
        raise ImportError('LoRA needs peft: pip install "diffcore[train]"') from exc
    return peft


def _lora_layers(network: torch.nn.Module) -> dict[str, torch.nn.Module]:
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return {}
    return {name: m for name, m in network.named_modules() if isinstance(m, LoraLayer)}


def is_lora_parameter(name: str) -> bool:
    """Whether a parameter name belongs to a LoRA adapter (``...lora_A.default.weight``)."""
    return ".lora_A." in name or ".lora_B." in name or ".lora_embedding_" in name


def lora_parameters(prior) -> list[tuple[str, torch.nn.Parameter]]:
    """The ``(name, parameter)`` pairs of the prior's LoRA adapters."""
    return [(n, p) for n, p in network_of(prior).named_parameters() if is_lora_parameter(n)]


def lora_targets(prior, target: str) -> list[str]:
    """The attention projections (module names) that ``target`` selects for LoRA."""
    network = network_of(prior)
    selected = {name for name, _ in select_parameters(network, target)}
    modules = []
    for layer in attention_layers(network):
        for projection in PROJECTIONS:
            full = f"{layer.name}.{projection}"
            if f"{full}.weight" in selected:
                modules.append(full)
    if not modules:
        raise DiffcoreError(
            f"LoRA target {target!r} selects no attention projection ({', '.join(PROJECTIONS)}) of {type(network).__name__}"
        )
    return modules


def add_lora(prior, rank: int = 4, alpha: float | None = None, target: str | list[str] = "cross-attention", dropout: float = 0.0):
    """Add LoRA adapters of rank ``rank`` to the attention projections that ``target`` selects; return their parameters.

    Args:
        prior: a :class:`~diffcore.protocols.Trainable` prior or a diffusers network (changed in place).
        rank: the rank r of each update ``B A``.
        alpha: the scale numerator (``alpha / r`` multiplies ``B A``); default ``rank`` (scale 1).
        target: a kind of :func:`diffcore.layers.select_parameters` (``cross-attention``,
            ``self-attention``, ``temporal``, ``all``, ``all-but-cross-attention``,
            ``pattern:<glob>``, ``regex:<expression>``), or a list of projection module names.
        dropout: dropout on the adapter's input during training.

    Every other parameter of the network is frozen; the adapters require gradients. The
    returned ``(name, parameter)`` pairs are what :func:`diffcore.training.fit` takes.
    """
    if not isinstance(rank, int) or rank < 1:
        raise DiffcoreError(f"LoRA rank must be a positive integer, got {rank!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise DiffcoreError(f"LoRA dropout must be in [0, 1), got {dropout}")
    network = network_of(prior)
    if _lora_layers(network):
        raise DiffcoreError("this network already has LoRA adapters; add them once (lora_settings(prior) shows them)")
    modules = list(target) if isinstance(target, (list, tuple)) else lora_targets(network, target)
    known = dict(network.named_modules())
    unknown = [m for m in modules if not isinstance(known.get(m), torch.nn.Linear)]
    if unknown:
        raise DiffcoreError(f"LoRA target {unknown[0]!r} is not a linear layer of {type(network).__name__}")
    peft = _peft()
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=float(alpha if alpha is not None else rank),
        target_modules=modules,
        lora_dropout=float(dropout),
        init_lora_weights=True,
    )
    peft.inject_adapter_in_model(config, network, adapter_name=ADAPTER)
    network.requires_grad_(False)
    pairs = lora_parameters(network)
    for _, p in pairs:
        p.requires_grad_(True)
    return pairs


def lora_settings(prior) -> dict | None:
    """The LoRA adapters of the prior's network (rank, alpha, dropout, target modules, enabled), or None."""
    layers = _lora_layers(network_of(prior))
    if not layers:
        return None
    first = next(iter(layers.values()))
    drop = first.lora_dropout[ADAPTER]
    return {
        "rank": int(first.r[ADAPTER]),
        "alpha": float(first.lora_alpha[ADAPTER]),
        "dropout": float(getattr(drop, "p", 0.0)),
        "target_modules": sorted(layers),
        "enabled": not first.disable_adapters,
    }


def set_lora_enabled(prior, enabled: bool) -> None:
    """Turn the LoRA adapters on (the fine-tuned network) or off (the base network), keeping ``requires_grad`` as it was."""
    network = network_of(prior)
    layers = _lora_layers(network)
    if not layers:
        raise DiffcoreError("this network has no LoRA adapters; add them with diffcore.training.add_lora")
    flags = [(p, p.requires_grad) for _, p in lora_parameters(network)]
    for layer in layers.values():
        layer.enable_adapters(bool(enabled))
    for p, flag in flags:
        p.requires_grad_(flag)


@contextlib.contextmanager
def lora_disabled(prior):
    """Within the block the prior is its base model (adapters off); after it, as it was."""
    was = lora_settings(prior)
    if was is None:
        raise DiffcoreError("this network has no LoRA adapters; add them with diffcore.training.add_lora")
    set_lora_enabled(prior, False)
    try:
        yield prior
    finally:
        set_lora_enabled(prior, was["enabled"])
