"""diff-safety: memorisation audits and concept erasure for diffcore priors.

- Memorisation: :func:`find_extractions` (Carlini et al. 2023's extraction test with tiled L2 and
  their relative threshold, and the cosine replica test of Somepalli et al. 2023),
  :func:`clique_test`, :func:`duplicate_groups`, :func:`membership_inference`, and
  :func:`audit`, which generates from a prior and runs them all against a training set
  (``diffcore safety audit``).
- Concept erasure: :func:`erase` (ESD, Gandikota et al. 2023; concept ablation, Kumari et al.
  2023) fine-tunes a prior so that it no longer produces a concept, and saves the change as a
  fine-tuned prior that loads by name (``diffcore safety erase``).

Names are imported on first use, so ``import diff_safety`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "NeighbourIndex": "diff_safety.neighbours",
    "Neighbours": "diff_safety.neighbours",
    "tiled_distance": "diff_safety.distances",
    "relative_score": "diff_safety.distances",
    "feature_space": "diff_safety.features",
    "Criterion": "diff_safety.extraction",
    "TrainingSet": "diff_safety.extraction",
    "find_extractions": "diff_safety.extraction",
    "clique_test": "diff_safety.clique",
    "largest_clique": "diff_safety.clique",
    "duplicate_groups": "diff_safety.duplicates",
    "membership_inference": "diff_safety.membership",
    "roc_auc": "diff_safety.membership",
    "load_images": "diff_safety.data",
    "audit": "diff_safety.auditing",
    "AuditResult": "diff_safety.auditing",
    "erase": "diff_safety.erasure",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diff_safety' has no attribute {name!r}")
