"""Generations for the audit: batched, seeded, and resumable as a diffcore job.

A :class:`Plan` says what to condition each generation on: nothing (an unconditional prior), the
prior's null condition (``unconditional=True``), class labels cycling through ``labels`` (all of
the prior's classes by default), or prompts cycling through ``prompts``; with ``guidance != 1``
a conditional prior is sampled with classifier-free guidance (:class:`diffcore.priors.Guided`,
its ``uncond`` the prior's null condition). Each job item (a seed) draws ``n`` generations from
``torch.Generator().manual_seed(item.seed)`` and writes them, with their conditions, to one
``.safetensors`` file (tensors ``samples`` and, for labels, ``labels``; prompts in the metadata),
so a killed audit resumes where it stopped and a job spreads over GPUs (docs/scaling.md).

:func:`generation_task` is that job task: ``diffcore safety audit --job JOB.toml`` and
``diffcore run`` with ``task = "safety audit"`` run it; :func:`read_generations` reads a folder
of its outputs back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond, check_prior_attributes


@dataclass(frozen=True)
class Plan:
    """Conditions of the generations: ``kind`` is ``none``, ``null``, ``labels`` or ``prompts``; ``values`` cycle."""

    kind: str
    values: tuple = ()
    guidance: float = 1.0

    def key(self, j: int) -> str:
        """The condition of generation ``j`` of an item, as text (the clique test groups by it)."""
        if self.kind in ("labels", "prompts"):
            return str(self.values[j % len(self.values)])
        return self.kind

    def cond(self, prior, n: int) -> Cond | None:
        if self.kind == "none":
            return None
        if self.kind == "null":
            return prior.null_cond
        if self.kind == "labels":
            return Cond(labels=torch.tensor([self.values[j % len(self.values)] for j in range(n)]))
        return Cond(text=[self.values[j % len(self.values)] for j in range(n)])


def make_plan(prior, *, labels=None, prompts=None, unconditional: bool = False, guidance: float = 1.0) -> Plan:
    """Check the conditioning asked for against what ``prior`` accepts (one-line errors) and return the plan."""
    check_prior_attributes(prior)
    accepts = set(prior.accepts)
    given = [name for name, value in (("labels", labels), ("prompts", prompts)) if value]
    if len(given) + bool(unconditional) > 1:
        raise DiffcoreError("give at most one of labels, prompts and unconditional")
    if unconditional:
        if prior.null_cond is None:
            raise DiffcoreError("this prior has no unconditional model (no null condition); give labels or prompts instead")
        return Plan("null", guidance=1.0)
    if prompts:
        if "text" not in accepts:
            raise DiffcoreError(
                f"this prior cannot be conditioned on prompts; it accepts: {', '.join(sorted(accepts)) or 'nothing (unconditional)'}"
            )
        return Plan("prompts", tuple(str(p) for p in prompts), float(guidance))
    if "labels" in accepts:
        names = prior.class_names
        n_classes = len(names) if names is not None else None
        if labels in (None, (), [], "all"):
            if n_classes is None:
                raise DiffcoreError("this class-conditional prior does not name its classes; give the labels to generate")
            labels = tuple(range(n_classes))
        values = tuple(int(v) for v in labels)
        bad = [v for v in values if v < 0 or (n_classes is not None and v >= n_classes)]
        if bad:
            raise DiffcoreError(
                f"label {bad[0]} is not a class of this prior; it has classes 0 to {n_classes - 1}"
                if n_classes
                else f"label {bad[0]} is negative"
            )
        return Plan("labels", values, float(guidance))
    if labels:
        raise DiffcoreError(
            f"this prior cannot be conditioned on labels; it accepts: {', '.join(sorted(accepts)) or 'nothing (unconditional)'}"
        )
    if "text" in accepts:
        raise DiffcoreError("this prior is text-conditional: give the prompts to generate from (--prompt)")
    return Plan("none")


def guided_prior(prior, plan: Plan, n: int):
    """The prior to sample and the cond to pass: ``Guided`` for a guidance scale other than 1."""
    cond = plan.cond(prior, n)
    if plan.kind in ("labels", "prompts") and plan.guidance != 1.0:
        from diffcore.priors import Guided

        return Guided(prior, plan.guidance, cond), None
    return prior, cond


def draw(prior, plan: Plan, n: int, *, steps: int, sampler: str, generator: torch.Generator) -> torch.Tensor:
    """``n`` generations following ``plan`` (decoded images for latent priors), on the CPU, float32."""
    import diffcore

    model, cond = guided_prior(prior, plan, n)
    return diffcore.sample(model, n, steps=steps, sampler=sampler, cond=cond, generator=generator).float().cpu()


def _encode(samples: torch.Tensor, plan: Plan, n: int, settings: dict) -> bytes:
    from safetensors.torch import save

    tensors = {"samples": samples.contiguous()}
    if plan.kind == "labels":
        tensors["labels"] = torch.tensor([plan.values[j % len(plan.values)] for j in range(n)], dtype=torch.int64)
    meta = {**settings, "keys": [plan.key(j) for j in range(n)]}
    return save(tensors, metadata={"diffcore-safety": json.dumps(meta, sort_keys=True)})


def generation_task(
    prior: str,
    n: int = 64,
    steps: int = 50,
    sampler: str = "ddim",
    labels: list | None = None,
    prompts: list | None = None,
    unconditional: bool = False,
    guidance: float = 1.0,
    device: str | None = None,
    dtype: str | None = None,
):
    """Draw n generations per item (seed) for a memorisation audit: one .safetensors each"""
    from diffcore.devices import build_prior

    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise DiffcoreError(f"n and steps must be positive integers, got n={n!r}, steps={steps!r}")
    built = build_prior(prior, device=device, dtype=dtype)
    plan = make_plan(built, labels=labels, prompts=prompts, unconditional=unconditional, guidance=guidance)
    return GenerationRun(built, plan, n, steps, sampler, {"prior": prior, "steps": steps, "sampler": sampler, "guidance": plan.guidance})


@dataclass(frozen=True)
class GenerationRun:
    """The per-item callable of :func:`generation_task`."""

    prior: object
    plan: Plan
    n: int
    steps: int
    sampler: str
    settings: dict

    def __call__(self, item) -> dict[str, bytes]:
        generator = torch.Generator().manual_seed(item.seed)
        samples = draw(self.prior, self.plan, self.n, steps=self.steps, sampler=self.sampler, generator=generator)
        return {".safetensors": _encode(samples, self.plan, self.n, {**self.settings, "seed": item.seed})}


def read_generations(folder, items: list[str] | None = None) -> tuple[torch.Tensor, list[str], list[str]]:
    """The generations in a folder of :func:`generation_task` outputs: images (M, ...), condition keys and names (``file[i]``).

    ``items`` names the job items to read (their keys, e.g. ``seed-000003``); default: every file.
    """
    from safetensors import safe_open

    folder = Path(folder)
    if items is None:
        files = sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("."))
    else:
        files = [folder / f"{key}.safetensors" for key in items]
        missing = [p.name for p in files if not p.is_file()]
        if missing:
            raise DiffcoreError(f"{str(folder)!r} lacks the generations {', '.join(missing[:3])}")
    if not files:
        raise DiffcoreError(f"{str(folder)!r} holds no generations (.safetensors files written by the audit's generation job)")
    images, keys, names = [], [], []
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("diffcore-safety", "{}"))
            samples = f.get_tensor("samples")
        images.append(samples)
        keys.extend(meta.get("keys") or ["none"] * samples.shape[0])
        names.extend(f"{path.stem}[{i}]" for i in range(samples.shape[0]))
    shapes = {tuple(x.shape[1:]) for x in images}
    if len(shapes) != 1:
        raise DiffcoreError(f"the generations in {str(folder)!r} have different shapes: {sorted(shapes)}")
    return torch.cat(images).float(), keys, names


__all__ = ["GenerationRun", "Plan", "draw", "generation_task", "guided_prior", "make_plan", "read_generations"]
