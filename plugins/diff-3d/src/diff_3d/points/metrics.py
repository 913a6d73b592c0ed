"""Distances between point clouds and the generation metrics of PointFlow, PVD and LION: MMD, COV and 1-NNA.

Between two clouds ``x`` (P, 3) and ``y`` (Q, 3):

- Chamfer distance ``CD = mean_i min_j |x_i - y_j|^2 + mean_j min_i |x_i - y_j|^2`` (squared distances,
  each direction averaged, summed: the convention of PointFlow's, PVD's and LION's evaluation code),
  with point-cloud-utils' k-d tree for the nearest neighbours, or pytorch3d's ``chamfer_distance`` where
  it is installed and asked for (the same number);
- earth mover's distance ``EMD = min over bijections pi of mean_i |x_i - y_pi(i)|`` (Euclidean, equal
  counts), solved exactly by POT's network simplex (``ot.emd2``); PVD and LION use an approximate
  matching on the GPU for the same quantity.

Between a set of generated clouds ``S_g`` and a set of reference (held-out) clouds ``S_r``, with a
distance ``d`` (Yang et al. 2019, PointFlow, sec. 5; Zhou et al. 2021, PVD, sec. 5.1):

- ``MMD = mean over r in S_r of min over g in S_g of d(g, r)`` (fidelity; lower is better);
- ``COV``: the share of reference clouds that are the nearest reference of some generated cloud
  (coverage, diversity; higher is better);
- ``1-NNA``: the accuracy of the leave-one-out 1-nearest-neighbour classifier that tells generated
  from reference clouds in ``S_g + S_r`` (50% when the two sets are alike, 100% when apart).

>>> import torch
>>> x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
>>> y = torch.tensor([[0.0, 0.0, 0.5], [1.0, 0.0, 0.0]])
>>> chamfer(x, y), emd(x, y)  # CD: (0.25 + 0) / 2 twice; EMD: (0.5 + 0) / 2
(0.25, 0.25)
"""

from __future__ import annotations

import numpy as np
import torch

from diffcore.errors import DiffcoreError, ShapeError

BACKENDS = ("auto", "point-cloud-utils", "pytorch3d")


def _cloud(x, name: str) -> np.ndarray:
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] < 1:
        raise ShapeError(f"{name} must be a point cloud (P, 3) with P >= 1, got shape {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise DiffcoreError(f"{name} has non-finite coordinates")
    return a


def _has_pytorch3d() -> bool:
    try:
        import pytorch3d.loss  # noqa: F401
    except ImportError:
        return False
    return True


def _backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise DiffcoreError(f"unknown Chamfer backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "pytorch3d" and not _has_pytorch3d():
        raise DiffcoreError(
            "the pytorch3d backend needs pytorch3d, which is not installed (it has no Linux release on PyPI); use point-cloud-utils"
        )
    if backend == "auto":
        return "pytorch3d" if _has_pytorch3d() else "point-cloud-utils"
    return backend


def chamfer(x, y, *, backend: str = "auto") -> float:
    """The Chamfer distance between clouds (P, 3) and (Q, 3): squared distances, each direction averaged, summed."""
    a, b = _cloud(x, "x"), _cloud(y, "y")
    if _backend(backend) == "pytorch3d":
        from pytorch3d.loss import chamfer_distance

        value, _ = chamfer_distance(torch.from_numpy(a)[None], torch.from_numpy(b)[None], point_reduction="mean")
        return float(value)
    import point_cloud_utils as pcu

    d_ab, _ = pcu.k_nearest_neighbors(a, b, 1, squared_distances=True)
    d_ba, _ = pcu.k_nearest_neighbors(b, a, 1, squared_distances=True)
    return float(np.mean(d_ab) + np.mean(d_ba))


def emd(x, y) -> float:
    """The exact earth mover's distance between clouds of the same size: the mean Euclidean distance of the best matching."""
    import ot

    a, b = _cloud(x, "x"), _cloud(y, "y")
    if len(a) != len(b):
        raise ShapeError(f"EMD compares clouds of the same size, got {len(a)} and {len(b)} points")
    cost = ot.dist(a, b, metric="euclidean")
    weights = np.full(len(a), 1.0 / len(a))
    return float(ot.emd2(weights, weights, cost, numItermax=1_000_000))


DISTANCES = {"cd": chamfer, "emd": emd}


def pairwise(first, second=None, *, distance: str = "cd") -> np.ndarray:
    """Distances (n, m) between the clouds of ``first`` (n, P, 3) and ``second`` (m, P, 3); ``second`` None: ``first`` with
    itself (symmetric, zero diagonal)."""
    if distance not in DISTANCES:
        raise DiffcoreError(f"unknown distance {distance!r}; expected one of {', '.join(DISTANCES)}")
    fn = DISTANCES[distance]
    if second is None:
        n = len(first)
        out = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                out[i, j] = out[j, i] = fn(first[i], first[j])
        return out
    return np.array([[fn(a, b) for b in second] for a in first]).reshape(len(first), len(second))


def mmd(d_gr: np.ndarray) -> float:
    """Minimum matching distance from ``d_gr`` (generated x reference): each reference's nearest generated cloud, averaged."""
    return float(np.asarray(d_gr).min(axis=0).mean())


def coverage(d_gr: np.ndarray) -> float:
    """Coverage from ``d_gr`` (generated x reference): the share of references that are some generated cloud's nearest."""
    d = np.asarray(d_gr)
    return float(len(np.unique(d.argmin(axis=1))) / d.shape[1])


def one_nna(d_gg: np.ndarray, d_gr: np.ndarray, d_rr: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy on generated + reference clouds (0.5 ideal), from the three distance blocks."""
    d_gg, d_gr, d_rr = (np.asarray(m, dtype=np.float64) for m in (d_gg, d_gr, d_rr))
    n_g, n_r = d_gr.shape
    full = np.block([[d_gg, d_gr], [d_gr.T, d_rr]])
    np.fill_diagonal(full, np.inf)
    is_generated = np.r_[np.ones(n_g, bool), np.zeros(n_r, bool)]
    nearest = full.argmin(axis=1)
    return float((is_generated[nearest] == is_generated).mean())


def set_metrics(generated, reference, *, distances=("cd", "emd")) -> dict[str, float]:
    """MMD, COV and 1-NNA of ``generated`` (n, P, 3) against ``reference`` (m, P, 3) under each distance: ``{"mmd-cd": ..., ...}``."""
    if len(generated) < 1 or len(reference) < 1 or len(generated) + len(reference) < 3:
        raise ShapeError("the generation metrics need at least one generated and one reference cloud, three in all")
    out = {}
    for name in distances:
        d_gr = pairwise(generated, reference, distance=name)
        d_gg, d_rr = pairwise(generated, distance=name), pairwise(reference, distance=name)
        out[f"mmd-{name}"] = mmd(d_gr)
        out[f"cov-{name}"] = coverage(d_gr)
        out[f"1-nna-{name}"] = one_nna(d_gg, d_gr, d_rr)
    return out
