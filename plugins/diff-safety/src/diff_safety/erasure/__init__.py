"""Concept erasure: fine-tune a conditional prior so that it no longer produces a concept.

Methods (``method=``):

- ``"esd-x"``, ``"esd-u"``, ``"esd-full"``: ESD (Gandikota et al. 2023, :mod:`.esd`), training
  the layers that read the condition, all the others, or everything;
- ``"ablation"``: model-based concept ablation (Kumari et al. 2023, :mod:`.ablation`), training
  the layers that read the condition.

Which parameters "read the condition" depends on the network. In a Stable Diffusion UNet
(``UNet2DConditionModel``) they are the cross-attention layers, ESD-x's choice. A
class-conditional ``UNet2DModel`` such as zoo:digits has no cross-attention: its label enters
through the class-embedding table (``class_embedding``), added to the time embedding. ESD-x
there trains that table; since the loss only ever asks for the concept's label, only the
concept's row moves, and every other class's prediction stays exactly what it was. ESD-u's
"all but cross-attention" is then every parameter (the same as ``esd-full``). ``train=`` chooses
the parameters by any kind of :func:`diffcore.layers.select_parameters` instead.

The result is the fine-tuned prior; :func:`save_erased` writes what changed (the trained tensors,
or LoRA adapters with ``lora_rank``) with :func:`diffcore.training.save_finetuned`, so the erased
prior loads by name anywhere: ``diffcore.create("prior", "finetuned", path=DIR)``.

The concept is a class label (an ``int``) for a class-conditional prior or a prompt (``str``) for
a text-conditional one; the anchor (what the concept is erased towards) is the prior's null
condition by default, or another label or prompt.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond, check_prior_attributes

METHODS = ("esd-x", "esd-u", "esd-full", "ablation")
FORMAT = "diffcore-safety-erasure"


@dataclass(frozen=True)
class ErasureSettings:
    """How to erase: method, strength ``eta`` (ESD), optimisation, the pool of noisy inputs, and what trains."""

    method: str = "esd-x"
    eta: float = 1.0
    steps: int = 400
    batch: int = 32
    lr: float | None = None  # default: 5e-2 for an embedding table, 1e-4 otherwise
    pool: int = 256
    pool_steps: int = 25
    train: str | None = None
    lora_rank: int | None = None
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise DiffcoreError(f"unknown erasure method {self.method!r}; use one of {', '.join(METHODS)}")
        for name in ("steps", "batch", "pool", "pool_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DiffcoreError(f"{name} must be a positive integer; got {value!r}")


@dataclass
class ErasureResult:
    """The erased prior, the parameter selection that trained, the losses and the settings."""

    prior: object
    selection: str
    losses: list[float]
    settings: ErasureSettings
    concept: int | str
    anchor: int | str | None
    info: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {
            "format": FORMAT,
            "concept": self.concept,
            "anchor": self.anchor,
            "settings": asdict(self.settings),
            "selection": self.selection,
            "final_loss": round(sum(self.losses[-20:]) / max(1, len(self.losses[-20:])), 6),
            **self.info,
        }


def concept_cond(prior, concept, what: str = "concept") -> Cond:
    """The :class:`Cond` of a concept (a label or a prompt), checked against what ``prior`` accepts."""
    check_prior_attributes(prior)
    accepts = set(prior.accepts)
    if "labels" in accepts:
        try:
            label = int(concept)
        except (TypeError, ValueError):
            raise DiffcoreError(f"this prior is conditioned on class labels; the {what} must be a class index, not {concept!r}") from None
        count = len(prior.class_names) if prior.class_names is not None else _embeddings(prior)
        if count is not None and not 0 <= label < count:
            raise DiffcoreError(f"the {what} {label} is not a class of this prior; it has classes 0 to {count - 1}")
        return Cond(labels=torch.tensor([label]))
    if "text" in accepts:
        return Cond(text=[str(concept)])
    raise DiffcoreError(
        f"this prior cannot be conditioned on a {what} (it accepts: {', '.join(sorted(accepts)) or 'nothing, it is unconditional'})"
    )


def _embeddings(prior) -> int | None:
    """The rows of the network's class-embedding table (its labels, the null label included), or None."""
    table = getattr(getattr(prior, "network", None), "class_embedding", None)
    return table.num_embeddings if isinstance(table, torch.nn.Embedding) else None


def _has_class_embedding(network) -> bool:
    return isinstance(getattr(network, "class_embedding", None), torch.nn.Embedding)


def selection_for(prior, method: str, train: str | None = None) -> str:
    """The parameter selection (a :func:`diffcore.layers.select_parameters` kind) a method trains on this prior."""
    from diffcore.layers import attention_layers, network_of

    if train is not None:
        return train
    network = network_of(prior)
    cross = any(layer.kind == "cross" for layer in attention_layers(network))
    if method in ("esd-x", "ablation"):
        if cross:
            return "cross-attention"
        if _has_class_embedding(network):
            return "pattern:class_embedding.*"
        raise DiffcoreError(
            f"{method} trains the layers that read the condition, and this network has neither cross-attention nor a class embedding; "
            "use esd-u or esd-full"
        )
    return "all-but-cross-attention" if method == "esd-u" and cross else "all"


def check_erasable(prior) -> None:
    """A one-line error unless ``prior`` is a conditional prior with a network to fine-tune and a null condition."""
    from diffcore.training.loss import check_trainable

    check_prior_attributes(prior)
    if not isinstance(getattr(prior, "network", None), torch.nn.Module):  # the Trainable contract's network, optional for priors
        raise DiffcoreError(
            f"prior {getattr(prior, 'name', type(prior).__name__)!r} has no network to fine-tune; erasure needs a network-backed prior "
            "(diffusers, stable-diffusion, zoo)"
        )
    check_trainable(prior)


def _eps(prior, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The noise prediction implied by the network's raw output in its own parameterisation."""
    from diffcore import conversions

    alpha = conversions.expand(prior.schedule.alpha(t).to(x_t), x_t)
    sigma = conversions.expand(prior.schedule.sigma(t).to(x_t), x_t)
    if prior.prediction_type == "epsilon":
        return output
    if prior.prediction_type == "v_prediction":
        return conversions.v_to_eps(x_t, output, alpha, sigma)
    return conversions.x0_to_eps(x_t, output, alpha, sigma)


def _pool(original, cond: Cond, n: int, steps: int, seed: int) -> torch.Tensor:
    """``n`` generations of the original prior for ``cond`` (in its sample space: latents for a latent prior)."""
    from diffcore.samplers import get_sampler

    g = torch.Generator().manual_seed(seed)
    parts = []
    sampler = get_sampler("ddim")
    ts = original.schedule.timesteps(steps)
    for start in range(0, n, 64):
        m = min(64, n - start)
        x = torch.randn((m, *original.sample_shape), generator=g) * float(original.schedule.init_std(ts[0]))
        with torch.no_grad():
            parts.append(sampler(original, x.to(original.device), ts, cond=cond).float().cpu())
    return torch.cat(parts)


def erase(prior, concept, *, anchor=None, settings: ErasureSettings | None = None, progress: bool | str = False):
    """Erase ``concept`` from ``prior`` (changed in place) and return an :class:`ErasureResult` (see the module docstring)."""
    from diff_safety.erasure.ablation import ablation_target
    from diff_safety.erasure.esd import esd_target
    from diffcore.training import add_lora, draw_times, fit, frozen_copy, train_only

    settings = settings or ErasureSettings()
    check_erasable(prior)
    c = concept_cond(prior, concept)
    if anchor is None:
        a = prior.null_cond
        if a is None:
            raise DiffcoreError("this prior has no null condition to erase towards; give an anchor concept")
    else:
        a = concept_cond(prior, anchor, "anchor")
    if anchor is not None and str(anchor) == str(concept):
        raise DiffcoreError("the anchor must differ from the concept")
    selection = selection_for(prior, settings.method, settings.train)
    original = frozen_copy(prior)
    start = time.perf_counter()
    ablation = settings.method == "ablation"
    pool = _pool(original, a if ablation else c, settings.pool, settings.pool_steps, settings.seed)
    pool_time = time.perf_counter() - start
    if settings.lora_rank:
        params = add_lora(prior, rank=settings.lora_rank, target=selection)
        prior.network.train()
    else:
        params = train_only(prior, selection)
    embedding_only = selection == "pattern:class_embedding.*"
    lr = settings.lr if settings.lr is not None else (5e-2 if embedding_only else 1e-4)
    device = prior.device

    def loss_fn(step, generator):
        pick = torch.randint(pool.shape[0], (settings.batch,), generator=generator)
        x0 = pool[pick].to(device)
        t = draw_times(prior.schedule, settings.batch, generator=generator)
        eps = torch.randn(x0.shape, generator=generator).to(device)
        alpha = prior.schedule.alpha(t).to(x0)
        sigma = prior.schedule.sigma(t).to(x0)
        shape = (-1,) + (1,) * (x0.ndim - 1)
        x_t = alpha.reshape(shape) * x0 + sigma.reshape(shape) * eps
        target = ablation_target(prior, x_t, t, a) if ablation else esd_target(original, x_t, t, c, a, eta=settings.eta)
        predicted = _eps(prior, prior.network_output(x_t, t, c), x_t, t)
        return torch.nn.functional.mse_loss(predicted.float(), target.float())

    record = fit(
        loss_fn,
        params,
        steps=settings.steps,
        generator=torch.Generator().manual_seed(settings.seed + 1),
        lr=lr,
        lr_schedule="constant",
        grad_clip=1.0,
        progress=progress,
        name=f"erase ({settings.method})",
        multi_process=False,
    )
    prior.network.eval().requires_grad_(False)
    for _, p in params:
        p.requires_grad_(True)  # save_finetuned saves what requires gradients: the trained tensors
    info = {
        "pool_time_s": round(pool_time, 1),
        "train_time_s": round(record.train_time_s, 1),
        "steps": record.steps,
        "lr": lr,
        "trained_tensors": len(params),
        "trained_values": sum(p.numel() for _, p in params),
    }
    return ErasureResult(prior, selection, record.losses, settings, concept, anchor, info)


def save_erased(result: ErasureResult, folder, *, base: str, extra: dict | None = None) -> Path:
    """Save the erased prior's trained tensors (or LoRA) as a fine-tuned prior in ``folder``, with ``erasure.json``."""
    from diffcore.tour import write_atomic
    from diffcore.training import save_finetuned

    folder = save_finetuned(result.prior, folder, base=base, delta=True)
    result.prior.network.requires_grad_(False)
    write_atomic(Path(folder) / "erasure.json", json.dumps({**result.record(), "base": base, **(extra or {})}, indent=2) + "\n")
    return Path(folder)


__all__ = [
    "FORMAT",
    "METHODS",
    "ErasureResult",
    "ErasureSettings",
    "check_erasable",
    "concept_cond",
    "erase",
    "save_erased",
    "selection_for",
]
