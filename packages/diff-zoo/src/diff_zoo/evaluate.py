"""The measurements of a zoo prior's model card, on held-out data, deterministic for a seed.

Samples come from :func:`diffcore.sample` (DDIM, 50 steps, eta 0) with the prior loaded by
``diffcore.create("prior", "zoo:NAME", path=...)``, in batches of 64 where batch ``i`` draws
its noise from ``torch.Generator().manual_seed(seed + i)``; class-conditional priors get
balanced labels ``i % n_classes``. "Guided" means classifier-free guidance
(:class:`diffcore.priors.Guided`) at scale 2, the README's example; "unguided" is the plain
conditional prior (scale 1).

- ``zoo:digits``: a classifier trained on the real training split (:mod:`diff_zoo.classifier`,
  its test accuracy reported) labels class-conditional samples; the card gives the share
  labelled as the class they were conditioned on, unguided and guided, and the Frechet distance
  in the classifier's feature space between samples and the real test split, next to the same
  distance between real training images and the test split.
- ``zoo:patches``, ``zoo:textures``, ``zoo:phantoms``: the Frechet distance between the
  :func:`diff_zoo.features.image_statistics` of samples and of the held-out data, next to the
  same figure for samples of a Gaussian fitted to the training data
  (:class:`diff_zoo.baselines.FittedGaussian`, per class for textures) and for real training
  images; and the same three figures against a reference set of other training images (for
  patches the held-out photograph differs from every training photograph, so both matter).
- every prior: nearest-training-neighbour distances
  (:func:`diff_zoo.distances.nearest_training_distances`, flipped training images included
  where the recipe trains on flips) of the samples, and of held-out images as the memorisation
  baseline; and the wall time of 16 samples at 50 DDIM steps (guided for conditional priors)
  on this machine.

Every set compared has the same size (``n``, 256 by default), so the bias of the estimators is
the same for all. ``check`` repeats the model-dependent figures on a cheap protocol (:data:`CHECKS`:
fewer samples and steps) and stores them, so that a test can re-measure them in seconds and see
that a card still describes the weights next to it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from diff_zoo.recipes import Recipe, get_recipe
from diff_zoo.references import References

SAMPLER = "ddim"
STEPS = 50
GUIDANCE = 2.0
BATCH = 64
TIMING_SAMPLES = 16


@dataclass(frozen=True)
class Protocol:
    """How samples are drawn for a set of figures."""

    n: int
    steps: int
    seed: int = 0
    nearest: bool = True  # measure nearest-training-neighbour distances (needs the whole training set)


# The cheap re-measurement each card stores and each shipped-weights test repeats: a few seconds
# per prior on one CPU thread. The phantoms' training set takes half a minute to generate, so
# their check leaves out the nearest-neighbour distances.
CHECKS = {
    "digits": Protocol(n=64, steps=10, seed=1000),
    "patches": Protocol(n=64, steps=10, seed=1000),
    "textures": Protocol(n=48, steps=10, seed=1000),
    "phantoms": Protocol(n=32, steps=10, seed=1000, nearest=False),
}


def weights_sha256(folder) -> str:
    """The SHA-256 of a trained folder's weights file: ties a card to the weights it measured."""
    from diff_zoo.train import WEIGHTS

    digest = hashlib.sha256()
    with open(Path(folder) / WEIGHTS, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def balanced_labels(recipe: Recipe, n: int) -> torch.Tensor | None:
    """``i % n_classes`` for class-conditional recipes, None otherwise."""
    return torch.arange(n) % recipe.n_classes if recipe.n_classes else None


def draw(prior, recipe: Recipe, n: int, *, steps: int, seed: int, scale: float = 1.0, batch: int = BATCH) -> torch.Tensor:
    """``n`` samples in [-1, 1]: batch ``i`` seeded ``seed + i``, labels ``i % n_classes``, guided when ``scale != 1``."""
    import diffcore

    labels = balanced_labels(recipe, n)
    out = []
    for i, start in enumerate(range(0, n, batch)):
        m = min(batch, n - start)
        g = torch.Generator().manual_seed(seed + i)
        if labels is None:
            x = diffcore.sample(prior, m, steps=steps, sampler=SAMPLER, generator=g)
        else:
            cond = diffcore.Cond(labels=labels[start : start + m])
            if scale == 1.0:
                x = diffcore.sample(prior, m, steps=steps, sampler=SAMPLER, cond=cond, generator=g)
            else:
                uncond = diffcore.Cond(labels=torch.full((m,), prior.null_label))
                x = diffcore.sample(diffcore.priors.Guided(prior, scale, cond, uncond), m, steps=steps, sampler=SAMPLER, generator=g)
        out.append(x.detach().to("cpu", torch.float32).clamp(-1, 1))
    return torch.cat(out)


# -- the model-dependent figures -------------------------------------------------------------------
def measure(prior, refs: References, protocol: Protocol, log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], dict]:
    """The figures of the card that depend on the weights, and the samples they were measured on."""
    from diff_zoo.distances import summary

    log = log or (lambda message: None)
    recipe = refs.recipe
    figures: dict[str, Any] = {}
    samples: dict[str, torch.Tensor] = {}
    if refs.name == "digits":
        labels = balanced_labels(recipe, protocol.n)
        for key, scale in (("unguided", 1.0), ("guided", GUIDANCE)):
            log(f"zoo:digits: {protocol.n} {key} samples, {protocol.steps} steps")
            x = draw(prior, recipe, protocol.n, steps=protocol.steps, seed=protocol.seed, scale=scale)
            samples[key] = x
            figures[f"class_accuracy_{key}"] = round(refs.classifier.accuracy(x, labels), 4)
            figures[f"frechet_{key}"] = refs.frechet_to_held_out(x)
    else:
        log(f"zoo:{refs.name}: {protocol.n} samples, {protocol.steps} steps")
        samples["unguided"] = draw(prior, recipe, protocol.n, steps=protocol.steps, seed=protocol.seed)
        figures["frechet_held_out"] = refs.frechet_to_held_out(samples["unguided"])
    if protocol.nearest:
        log(f"zoo:{refs.name}: nearest training neighbours")
        for key, x in samples.items():
            figures[f"nearest_{key}"] = summary(refs.nearest(x))
    return figures, samples


def baselines(refs: References, log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], torch.Tensor | None]:
    """The figures that depend on the data only (real-vs-real, the Gaussian, held-out NN distances), and the Gaussian's samples."""
    from diff_zoo.baselines import FittedGaussian
    from diff_zoo.distances import summary

    log = log or (lambda message: None)
    train = refs.train
    real = train[refs.train_pick]
    out: dict[str, Any] = {"frechet_train_vs_held_out": refs.frechet_to_held_out(real)}
    gauss = None
    if refs.name != "digits":
        log(f"zoo:{refs.name}: fitting a Gaussian to the training data")
        gaussian = FittedGaussian.fit(train, refs.dataset.train.labels, seed=refs.seed)
        gauss = gaussian.sample(refs.n, balanced_labels(refs.recipe, refs.n), generator=torch.Generator().manual_seed(refs.seed + 2))
        out["frechet_gaussian_vs_held_out"] = refs.frechet_to_held_out(gauss)
        out["frechet_train_vs_train"] = refs.frechet_to(real, refs.train_reference_stats)
        out["frechet_gaussian_vs_train"] = refs.frechet_to(gauss, refs.train_reference_stats)
    log(f"zoo:{refs.name}: nearest training neighbours of held-out images")
    out["nearest_held_out"] = summary(refs.nearest(refs.held_out[refs.held_out_pick]))
    return out, gauss


def time_sampling(prior, recipe: Recipe, steps: int = STEPS, n: int = TIMING_SAMPLES) -> float:
    """Seconds for ``n`` samples at ``steps`` DDIM steps (guided for conditional priors), after a short warm-up."""
    scale = GUIDANCE if recipe.n_classes else 1.0
    draw(prior, recipe, n, steps=2, seed=0, scale=scale)
    start = time.perf_counter()
    draw(prior, recipe, n, steps=steps, seed=0, scale=scale)
    return round(time.perf_counter() - start, 2)


def load_prior(name: str, path=None):
    import diffcore

    return diffcore.create("prior", f"zoo:{get_recipe(name).name}", **({"path": str(path)} if path is not None else {}))


def evaluate(
    name: str, path=None, *, n: int = 256, seed: int = 0, timing: bool = True, log: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], dict]:
    """Measure ``zoo:NAME`` (the shipped weights, or the trained folder ``path``); return ``metrics.json``'s content and the samples.

    The second value holds the sample sets (for pictures): ``unguided``, ``guided`` (digits),
    ``gaussian`` (the baseline's samples), ``real`` and ``real_labels`` (the held-out set).
    """
    from diff_zoo.priors import weights_folder
    from diff_zoo.train import device_name

    recipe = get_recipe(name)
    folder = Path(path) if path is not None else weights_folder(recipe.name)
    prior = load_prior(recipe.name, folder)
    log = log or (lambda message: None)
    started = time.perf_counter()
    log(f"zoo:{recipe.name}: building the data and the references")
    refs = References(recipe.name, n=n, seed=seed)
    protocol = Protocol(n=n, steps=STEPS, seed=seed)
    figures, samples = measure(prior, refs, protocol, log)
    if recipe.name != "digits":
        figures["frechet_train"] = refs.frechet_to(samples["unguided"], refs.train_reference_stats)
    base, samples["gaussian"] = baselines(refs, log)
    samples["real"], samples["real_labels"] = refs.held_out, refs.held_out_labels
    check = CHECKS[recipe.name]
    log(f"zoo:{recipe.name}: the cheap check ({check.n} samples, {check.steps} steps)")
    check_figures, _ = measure(prior, refs, check)
    seconds = time_sampling(prior, recipe) if timing else None
    metrics = {
        "name": recipe.name,
        "weights_sha256": weights_sha256(folder),
        "protocol": {
            "n": n,
            "steps": STEPS,
            "sampler": SAMPLER,
            "eta": 0.0,
            "seed": seed,
            "batch": BATCH,
            "guidance_scale": GUIDANCE if recipe.n_classes else None,
            "labels": f"i % {recipe.n_classes}" if recipe.n_classes else None,
        },
        "data": {
            "held_out": _held_out_description(recipe.name, refs),
            "train_images": len(refs.dataset.train),
            "held_out_images": len(refs.held_out),
            "flips": list(refs.flips),
        },
        "figures": {**figures, **base},
        "timing": {
            "seconds": seconds,
            "samples": TIMING_SAMPLES,
            "steps": STEPS,
            "guided": bool(recipe.n_classes),
            "device_name": device_name(torch.device("cpu")),
            "threads": torch.get_num_threads(),
        },
        "check": {"protocol": asdict(check), "figures": check_figures},
        "evaluation_seconds": round(time.perf_counter() - started, 1),
        "versions": {"torch": torch.__version__, "diff_zoo": _version("diff-zoo"), "scikit_learn": _version("scikit-learn")},
    }
    if recipe.name == "digits":
        from diff_zoo.classifier import DESCRIPTION, FEATURES

        metrics["classifier"] = {"model": DESCRIPTION, "features": FEATURES, "test_accuracy": round(refs.classifier_accuracy, 4)}
    else:
        from diff_zoo.features import FEATURE_NAMES

        metrics["features"] = {
            "names": list(FEATURE_NAMES),
            "description": "per-image statistics of the luminance (diff_zoo.features.image_statistics), "
            "each divided by its standard deviation over the held-out set",
        }
    metrics["headline"] = headline(metrics)
    return metrics, samples


def evaluate_and_write(
    name: str, path=None, *, out=None, docs=None, n: int = 256, seed: int = 0, log=None
) -> tuple[dict[str, Any], list[Path]]:
    """:func:`evaluate`, then write ``metrics.json`` and the card to ``out`` (default: the evaluated folder) and to ``docs``."""
    from diff_zoo.card import write_cards
    from diff_zoo.grids import picture
    from diff_zoo.priors import read_record, weights_folder

    recipe = get_recipe(name)
    folder = Path(path) if path is not None else weights_folder(recipe.name)
    metrics, samples = evaluate(recipe.name, folder, n=n, seed=seed, log=log)
    shown = samples.get("guided", samples["unguided"])
    grid = picture(recipe.name, shown, samples["real"], samples.get("real_labels"), recipe.n_classes)
    written = write_cards(recipe, read_record(folder), metrics, out if out is not None else folder, docs=docs, picture=grid)
    return metrics, written


def _held_out_description(name: str, refs: References) -> str:
    info = refs.dataset.info
    if name == "digits":
        return "the real test split (" + info["split"] + ")"
    if name == "patches":
        return f"{len(refs.held_out)} crops of the held-out photograph {info['held_out_photo']!r} (never trained on)"
    if name == "textures":
        return f"{len(refs.held_out)} crops of the held-out bottom quarter of each texture"
    return f"{len(refs.held_out)} phantoms from a separate random stream (seed + 2**32)"


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The card's one number, for the tour and for listings: guided class accuracy, or the Frechet distance to held-out data."""
    f = metrics["figures"]
    if metrics["name"] == "digits":
        return {
            "label": "guided samples labelled as their class",
            "value": f["class_accuracy_guided"],
            "text": f"{f['class_accuracy_guided']:.1%} of guided samples (scale {GUIDANCE:g}) labelled as their class "
            f"(unguided {f['class_accuracy_unguided']:.1%}; classifier {metrics['classifier']['test_accuracy']:.1%} on real test digits)",
        }
    value, gauss, real = f["frechet_held_out"], f["frechet_gaussian_vs_held_out"], f["frechet_train_vs_held_out"]
    return {
        "label": "Frechet distance of image statistics to held-out data",
        "value": value,
        "text": f"Frechet distance of image statistics to held-out data {value:.3g} "
        f"(Gaussian fitted to the training data {gauss:.3g}; real training images {real:.3g})",
    }


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


__all__ = [
    "CHECKS",
    "GUIDANCE",
    "STEPS",
    "Protocol",
    "baselines",
    "draw",
    "evaluate",
    "evaluate_and_write",
    "headline",
    "measure",
    "weights_sha256",
]
