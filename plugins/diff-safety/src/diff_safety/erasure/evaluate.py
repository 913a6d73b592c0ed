"""Measuring an erasure on zoo:digits with the zoo's classifier.

:func:`measure_digits` samples the original and the erased prior from the same noise (DDIM,
``steps`` steps, ``per_class`` generations per class, labels ``i % 10``) and reports, per class,
the share of class-k-conditioned samples that diff-zoo's digits classifier
(``diff_zoo.classifier.DigitClassifier``, 98.6 % on real test digits) labels k, before and after;
the Frechet distance (``diff_zoo.distances.frechet_distance``, in the classifier's 45-value
feature space) of the other classes' samples to the real test digits of those classes, before
and after; and two robustness rows for the erased class: its rate under classifier-free
guidance at scales 1 to 5 (``Guided``, uncond = the null label), and the share of samples drawn
with the null condition that the classifier labels as the erased class.

The targets of the issue are checked in ``targets``: erased class at most 15 % after (from at
least 90 % before), no other class losing more than 5 points, the others' Frechet distance
within 10 % of before.
"""

from __future__ import annotations

import time

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond


def _zoo():
    try:
        from diff_zoo import data as zoo_data
        from diff_zoo.classifier import DigitClassifier
        from diff_zoo.distances import frechet_distance
    except ImportError as exc:
        raise ImportError('measuring an erasure on digits needs diff-zoo: pip install "diff-safety[zoo]"') from exc
    return zoo_data, DigitClassifier, frechet_distance


def _sample(
    prior, labels: torch.Tensor | None, n: int, *, steps: int, seed: int, scale: float = 1.0, cond: Cond | None = None
) -> torch.Tensor:
    import diffcore
    from diffcore.priors import Guided

    out = []
    g = torch.Generator().manual_seed(seed)
    for start in range(0, n, 200):
        m = min(200, n - start)
        c = cond if cond is not None else Cond(labels=labels[start : start + m])
        model, c = (Guided(prior, scale, c), None) if scale != 1.0 else (prior, c)
        out.append(diffcore.sample(model, m, steps=steps, cond=c, generator=g).float())
    return torch.cat(out)


def measure_digits(
    original,
    erased,
    concept: int,
    *,
    per_class: int = 100,
    steps: int = 25,
    seed: int = 0,
    scales=(1.0, 2.0, 3.0, 4.0, 5.0),
    null_n: int = 500,
) -> dict:
    """Before / after figures of an erasure of the digit ``concept`` (see the module docstring)."""
    zoo_data, DigitClassifier, frechet_distance = _zoo()
    if not 0 <= int(concept) < 10:
        raise DiffcoreError(f"concept must be a digit 0-9; got {concept!r}")
    start = time.perf_counter()
    data = zoo_data.digits()
    classifier = DigitClassifier.fit(data.train)
    test_x, test_y = data.test.images(), data.test.labels
    labels = torch.arange(10 * per_class) % 10
    others = labels != concept
    real_others = test_x[test_y != concept]
    out: dict = {"concept": int(concept), "per_class": per_class, "steps": steps, "seed": seed}
    samples = {}
    for name, prior in (("before", original), ("after", erased)):
        x = _sample(prior, labels, len(labels), steps=steps, seed=seed)
        samples[name] = x
        pred = classifier.predict(x)
        out[f"rates_{name}"] = [round(float((pred[labels == k] == k).double().mean()), 4) for k in range(10)]
        out[f"frechet_others_{name}"] = round(frechet_distance(classifier.features(x[others]), classifier.features(real_others)), 4)
        out[f"guided_{name}"] = {
            str(s): round(
                float(
                    (
                        classifier.predict(
                            _sample(prior, None, per_class, steps=steps, seed=seed + 1, scale=s, cond=Cond(labels=torch.tensor([concept])))
                        )
                        == concept
                    )
                    .double()
                    .mean()
                ),
                4,
            )
            for s in scales
        }
        if prior.null_cond is not None:
            null = _sample(prior, None, null_n, steps=steps, seed=seed + 2, cond=prior.null_cond)
            out[f"null_{name}"] = round(float((classifier.predict(null) == concept).double().mean()), 4)
    before, after = out["rates_before"], out["rates_after"]
    drops = [round(before[k] - after[k], 4) for k in range(10) if k != concept]
    fd_change = out["frechet_others_after"] / out["frechet_others_before"] - 1
    out["targets"] = {
        "before_at_least_90": before[concept] >= 0.90,
        "after_at_most_15": after[concept] <= 0.15,
        "others_lose_at_most_5_points": max(drops) <= 0.05,
        "others_frechet_within_10_percent": abs(fd_change) <= 0.10,
    }
    out["largest_drop_other_class"] = max(drops)
    out["frechet_change"] = round(fd_change, 4)
    out["measure_time_s"] = round(time.perf_counter() - start, 1)
    out["_samples"] = samples
    return out


def before_after_grid(result: dict, path, per_row: int = 6) -> None:
    """A PNG: for each class a row of ``per_row`` samples before (left) and after (right), same noise; the erased class framed."""
    import io

    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from diffcore.tour import image_grid, write_atomic

    labels = torch.arange(10 * result["per_class"]) % 10
    fig = Figure(figsize=(7.2, 6.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, name in zip(axes, ("before", "after")):
        x = result["_samples"][name]
        rows = torch.cat([x[labels == k][:per_row] for k in range(10)])
        grid = image_grid(rows, nrow=per_row)
        ax.imshow(grid, interpolation="nearest")
        cell = grid.shape[0] / 10
        concept = result["concept"]
        ax.add_patch(Rectangle((0, concept * cell), grid.shape[1] - 1, cell, fill=False, edgecolor="#d03030", linewidth=2))
        ax.set_yticks([(k + 0.5) * cell for k in range(10)], [str(k) for k in range(10)])
        ax.set_xticks([])
        rate = result[f"rates_{name}"][concept]
        ax.set_title(f"{name}: class {concept} labelled {concept} in {100 * rate:.0f} %", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, facecolor="white")
    write_atomic(path, buf.getvalue())


__all__ = ["before_after_grid", "measure_digits"]
