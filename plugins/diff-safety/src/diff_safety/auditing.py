"""The memorisation audit: generate from a prior, then test the generations against its training set.

:func:`audit` runs, in order:

1. **generation** (:mod:`diff_safety.generate`): ``n`` generations in batches of ``batch``, each
   batch seeded by its own item seed; with ``work`` set, as a diffcore job in ``work`` (a killed
   audit resumes where it stopped), or read from a folder of an earlier generation job
   (``generations=``);
2. **extraction** (:func:`~diff_safety.extraction.find_extractions`): Carlini et al.'s tiled-L2
   test with their relative threshold, and the cosine replica test in a feature space;
3. **the clique test** (:func:`~diff_safety.clique.clique_test`) per condition;
4. **duplicates** in the training set (:func:`~diff_safety.duplicates.duplicate_groups`);
5. **membership inference** (:func:`~diff_safety.membership.membership_inference`), when
   held-out images are given: training images against them.

:class:`AuditResult` holds everything; :func:`diff_safety.report.write_report` turns it into
``report.json`` and ``index.html``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from diff_safety.clique import CliqueResult, clique_test
from diff_safety.data import ImageData
from diff_safety.duplicates import DuplicateGroup, duplicate_groups, duplicate_summary
from diff_safety.extraction import Criterion, Extractions, TrainingSet, find_extractions
from diff_safety.generate import GenerationRun, Plan, draw, make_plan, read_generations
from diff_safety.membership import MembershipResult, membership_inference
from diffcore.errors import DiffcoreError
from diffcore.jobs.items import seed_items
from diffcore.protocols import Cond, check_prior_attributes

FORMAT = "diffcore-safety-audit"


@dataclass
class AuditResult:
    """What :func:`audit` found (see the module docstring)."""

    generated: torch.Tensor
    keys: list[str]
    names: list[str]
    train: ImageData
    extractions: Extractions
    cliques: list[CliqueResult]
    duplicates: list[DuplicateGroup]
    membership: MembershipResult | None
    settings: dict
    timing: dict = field(default_factory=dict)
    baseline: dict | None = None

    def extracted(self) -> list[int]:
        """Indices of the extracted generations, most certain first (lowest relative score)."""
        index = torch.nonzero(self.extractions.extracted).flatten()
        return index[torch.argsort(self.extractions.score[index])].tolist()

    def summary(self) -> dict:
        ex = self.extractions
        return {
            "generations": len(self.keys),
            "training_images": len(self.train),
            "unique_training_images": ex.info.get("unique_training_images"),
            "extracted_generations": int(ex.extracted.sum()),
            "extraction_rate": round(ex.rate, 5),
            "extracted_training_images": int(ex.extracted_training_images().numel()),
            "replica_generations": int(ex.replica.sum()),
            "memorised_conditions": [c.condition for c in self.cliques if c.memorised],
            "duplicate_groups": len(self.duplicates),
            "membership_auc": None if self.membership is None else round(self.membership.auc, 4),
        }

    def as_dict(self) -> dict:
        """The JSON report: settings, summary, and one entry per extracted generation and per condition."""
        ex = self.extractions
        rows = []
        for i in self.extracted():
            j = int(ex.nearest[i])
            rows.append(
                {
                    "generation": self.names[i],
                    "condition": self.keys[i],
                    "training_index": j,
                    "training_image": self.train.names[j] if self.train.names else str(j),
                    "distance": round(float(ex.distance[i]), 5),
                    "score": round(float(ex.score[i]), 5),
                    "cosine_similarity": None if math.isnan(float(ex.similarity[i])) else round(float(ex.similarity[i]), 5),
                }
            )
        return {
            "format": FORMAT,
            "settings": self.settings,
            "summary": self.summary(),
            "extracted": rows,
            "replicas": [
                {"generation": self.names[i], "training_index": int(ex.similar[i]), "cosine_similarity": round(float(ex.similarity[i]), 5)}
                for i in torch.nonzero(ex.replica).flatten().tolist()
            ],
            "cliques": [
                {"condition": c.condition, "generations": c.generations, "largest_clique": len(c.clique), "memorised": c.memorised}
                for c in self.cliques
            ],
            "duplicates": {
                **duplicate_summary(self.duplicates, len(self.train)),
                "largest": [{"size": g.size, "indices": list(g.indices[:20])} for g in self.duplicates[:20]],
            },
            "membership": None if self.membership is None else self.membership.as_dict(),
            "held_out_baseline": self.baseline,
            "score_quantiles": {str(q): round(float(torch.quantile(ex.score, q)), 4) for q in (0.01, 0.05, 0.5)}
            if ex.score.numel()
            else {},
            "timing": self.timing,
        }


def _items(n: int, batch: int) -> int:
    return max(1, math.ceil(n / batch))


def generate_job(
    prior, prior_spec: str, plan: Plan, *, n: int, batch: int, steps: int, sampler: str, seed: int, work: Path, progress: bool = False
) -> None:
    """Run the generation as a resumable job in ``work`` (its items: ``ceil(n / batch)`` seeds from ``seed``)."""
    from diff_safety.generate import generation_task
    from diffcore.jobs import JobSpec, Task, run_job

    options = {"prior": prior_spec, "n": batch, "steps": steps, "sampler": sampler, "guidance": plan.guidance}
    if plan.kind == "labels":
        options["labels"] = list(plan.values)
    elif plan.kind == "prompts":
        options["prompts"] = list(plan.values)
    elif plan.kind == "null":
        options["unconditional"] = True
    spec = JobSpec(task=None, out=work, items={"seeds": _items(n, batch)}, options=options, seed=seed)
    run = GenerationRun(
        prior, plan, batch, steps, sampler, {"prior": prior_spec, "steps": steps, "sampler": sampler, "guidance": plan.guidance}
    )
    # the work folder is the audit's own: a rerun with other settings takes it over (force) and redoes its items
    summary = run_job(spec, Task("safety audit", generation_task), prepared=run, progress=progress, force=True)
    if summary.failed:
        key, error = summary.failures[0]
        raise DiffcoreError(f"the generation of {key} failed: {error}")


def audit(
    prior,
    train: ImageData,
    *,
    n: int = 1000,
    steps: int = 50,
    sampler: str = "ddim",
    labels=None,
    prompts=None,
    unconditional: bool = False,
    guidance: float = 1.0,
    batch: int = 64,
    seed: int = 0,
    criterion: Criterion | None = None,
    features="pixels",
    clique_threshold: float = 0.1,
    clique_k: int = 10,
    duplicate_threshold: float = 0.05,
    held_out: ImageData | None = None,
    membership_times=(0.1,),
    membership_draws: int = 4,
    prior_spec: str | None = None,
    work: Path | None = None,
    generations: Path | None = None,
    progress: bool = False,
) -> AuditResult:
    """Audit ``prior`` against its training images ``train`` (see the module docstring).

    ``prior`` may be None when ``generations`` (a folder of a generation job's outputs) is given
    and no membership inference is asked for. ``work`` (with ``prior_spec``, the spec the job
    records) makes the generation a resumable job there.
    """
    criterion = criterion or Criterion()
    timing: dict[str, float] = {}
    start = time.perf_counter()
    if generations is not None:
        generated, keys, names = read_generations(generations)
    else:
        if prior is None:
            raise DiffcoreError("give a prior to generate from, or a folder of generations")
        if not isinstance(n, int) or n < 1 or not isinstance(batch, int) or batch < 1:
            raise DiffcoreError(f"n and batch must be positive integers; got n={n!r}, batch={batch!r}")
        plan = make_plan(prior, labels=labels, prompts=prompts, unconditional=unconditional, guidance=guidance)
        if work is not None:
            generate_job(
                prior,
                prior_spec or "prior",
                plan,
                n=n,
                batch=batch,
                steps=steps,
                sampler=sampler,
                seed=seed,
                work=Path(work),
                progress=progress,
            )
            generated, keys, names = read_generations(work, [item.key for item in seed_items(_items(n, batch), seed)])
        else:
            parts, keys, names = [], [], []
            for item in range(_items(n, batch)):
                parts.append(draw(prior, plan, batch, steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(seed + item)))
                keys.extend(plan.key(j) for j in range(batch))
                names.extend(f"seed-{seed + item:06d}[{j}]" for j in range(batch))
            generated = torch.cat(parts)
        generated, keys, names = generated[:n], keys[:n], names[:n]
    timing["generation_s"] = round(time.perf_counter() - start, 2)
    if tuple(generated.shape[1:]) != tuple(train.images.shape[1:]):
        raise DiffcoreError(
            f"the generations are {'x'.join(map(str, generated.shape[1:]))} but the training images "
            f"{'x'.join(map(str, train.images.shape[1:]))}; they must match"
        )

    start = time.perf_counter()
    unique = TrainingSet.of(train.images)
    found = find_extractions(generated, train.images, criterion, features=features, training_set=unique)
    timing["search_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    cliques = clique_test(generated, keys, threshold=clique_threshold, k=clique_k, grid=criterion.grid, quantile=criterion.quantile)
    timing["clique_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    groups = duplicate_groups(train.images, threshold=duplicate_threshold, grid=criterion.grid, backend=criterion.backend)
    timing["duplicates_s"] = round(time.perf_counter() - start, 2)
    membership, baseline = None, None
    if held_out is not None:
        baseline = held_out_baseline(held_out.images, train.images, criterion, features, unique)
    if held_out is not None:
        if prior is None:
            raise DiffcoreError("membership inference needs the prior (--prior)")
        start = time.perf_counter()
        member_cond, held_cond = _membership_conds(prior, train, held_out)
        membership = membership_inference(
            prior,
            train.images,
            held_out.images,
            times=membership_times,
            draws=membership_draws,
            member_cond=member_cond,
            non_member_cond=held_cond,
            seed=seed,
        )
        timing["membership_s"] = round(time.perf_counter() - start, 2)
    settings = {
        "prior": prior_spec or (None if prior is None else getattr(prior, "name", None) or type(prior).__name__),
        "data": train.source,
        "held_out": None if held_out is None else held_out.source,
        "n": len(keys),
        "steps": steps,
        "sampler": sampler,
        "guidance": guidance,
        "batch": batch,
        "seed": seed,
        "criterion": criterion.as_dict(),
        "features": found.feature_space,
        "clique_threshold": clique_threshold,
        "clique_k": clique_k,
        "duplicate_threshold": duplicate_threshold,
        "membership_times": list(membership_times),
        "membership_draws": membership_draws,
        "backend": found.info.get("backend"),
    }
    return AuditResult(generated, keys, names, train, found, cliques, groups, membership, settings, timing, baseline)


def held_out_baseline(held_out: torch.Tensor, train: torch.Tensor, criterion: Criterion, features, unique: TrainingSet) -> dict:
    """Both tests run on held-out images, which no model copied: their flag rates are the tests' false-positive rates.

    A replica threshold below the held-out similarities, or a delta above the held-out scores,
    flags images that are merely typical of the data.
    """
    found = find_extractions(held_out, train, criterion, features=features, training_set=unique)
    q = lambda x, p: round(float(torch.quantile(x, p)), 4)  # noqa: E731
    out = {
        "images": int(held_out.shape[0]),
        "extracted_rate": round(found.rate, 5),
        "score_min": round(float(found.score.min()), 4),
        "score_p01": q(found.score, 0.01),
        "replica_rate": round(float(found.replica.double().mean()), 5),
    }
    if not torch.isnan(found.similarity).all():
        out.update(similarity_p99=q(found.similarity, 0.99), similarity_max=round(float(found.similarity.max()), 4))
    return out


def _membership_conds(prior, train: ImageData, held_out: ImageData) -> tuple[Cond | None, Cond | None]:
    """Labels where the prior takes them and both sets carry them; else the null condition (or none)."""
    check_prior_attributes(prior)
    accepts = set(prior.accepts)
    if not accepts:
        return None, None
    if "labels" in accepts and train.labels is not None and held_out.labels is not None:
        return Cond(labels=train.labels), Cond(labels=held_out.labels)
    if prior.null_cond is None:
        raise DiffcoreError("membership inference on this conditional prior needs labels in both datasets (it has no null condition)")
    return prior.null_cond, prior.null_cond


__all__ = ["FORMAT", "AuditResult", "audit", "generate_job"]
