"""Keeping the model cards true: measure a card's cheap check again and compare it with the card.

``diffcore zoo evaluate`` stores, next to the card's figures, the same figures on a cheap
protocol (:data:`diff_zoo.evaluate.CHECKS`); :func:`recheck` measures them again from the
weights, and :func:`check_mismatches` lists those that moved more than the tolerances below.
The tests run both for every shipped prior.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diff_zoo.evaluate import Protocol, load_prior, measure
from diff_zoo.recipes import get_recipe
from diff_zoo.references import References

# Tolerances of the re-measured check: the same weights, seeds and code give the same figures on
# one machine; across machines, float32 kernels differ in the last bits and 10 DDIM steps carry
# that into the samples, so a sample or two may change label and distances move by a few per mille.
ACCURACY_TOLERANCE_SAMPLES = 2  # labels that may change out of the check's n
FRECHET_TOLERANCE = (0.05, 1e-3)  # relative, absolute
NEAREST_TOLERANCE = (0.02, 1e-4)


def recheck(name: str, folder=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Re-measure the cheap check of a measured folder (default: the shipped weights); return (stored, measured) figures."""
    from diff_zoo.priors import weights_folder

    recipe = get_recipe(name)
    folder = Path(folder) if folder is not None else weights_folder(recipe.name)
    metrics = json.loads((folder / "metrics.json").read_text())
    protocol = Protocol(**metrics["check"]["protocol"])
    stored = metrics["check"]["figures"]
    refs = References(recipe.name, n=metrics["protocol"]["n"], seed=metrics["protocol"]["seed"], with_train=protocol.nearest)
    measured, _ = measure(load_prior(recipe.name, folder), refs, protocol)
    return stored, measured


def check_mismatches(stored: dict[str, Any], measured: dict[str, Any], n: int) -> list[str]:
    """The figures of ``measured`` that differ from ``stored`` by more than the tolerances above (empty: the card holds)."""
    problems = []
    if set(stored) != set(measured):
        problems.append(f"figures differ: stored {sorted(stored)}, measured {sorted(measured)}")

    def close(a, b, rel, abs_):
        return abs(a - b) <= rel * abs(b) + abs_

    for key in sorted(set(stored) & set(measured)):
        a, b = measured[key], stored[key]
        if key.startswith("class_accuracy"):
            ok = abs(a - b) <= ACCURACY_TOLERANCE_SAMPLES / n + 1e-9
        elif key.startswith("frechet"):
            ok = close(a, b, *FRECHET_TOLERANCE)
        else:
            ok = all(close(a[k], b[k], *NEAREST_TOLERANCE) for k in b)
        if not ok:
            problems.append(f"{key}: measured {a}, the card says {b}")
    return problems


__all__ = ["ACCURACY_TOLERANCE_SAMPLES", "FRECHET_TOLERANCE", "NEAREST_TOLERANCE", "check_mismatches", "recheck"]
