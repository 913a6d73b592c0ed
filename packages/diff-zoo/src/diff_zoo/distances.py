"""Distances between sets of images or features, as the model cards report them.

- :func:`frechet_distance`: the Frechet distance between Gaussians fitted to two feature sets
  (Dowson & Landau 1982; the formula of FID, Heusel et al. 2017):
  ``|m1 - m2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)``.
- :func:`nearest_neighbour_distances`: for each image, the distance to its nearest neighbour
  in a reference set (the memorisation check of Carlini et al. 2023 and Somepalli et al. 2023
  starts from it), as a root-mean-square pixel difference.
- :func:`summary`: min, 1st percentile, median and mean of a set of distances.

>>> import torch
>>> x = torch.randn(400, 3, generator=torch.Generator().manual_seed(0))
>>> round(frechet_distance(x, x), 9)
0.0
>>> round(frechet_distance(x, x + torch.tensor([1.0, 2.0, 2.0])), 6)  # a shift c adds |c|^2
9.0
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError, ShapeError


def _rows(name: str, x, least: int = 2) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim < 2 or x.shape[0] < least:
        raise ShapeError(f"{name} has shape {tuple(x.shape)}; expected (N, ...) with N >= {least}")
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    if not torch.isfinite(x).all():
        raise DiffcoreError(f"{name} holds non-finite values")
    return x


def _psd_sqrt(c: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a positive semi-definite matrix (negative rounding errors clipped)."""
    values, vectors = torch.linalg.eigh(c)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(x, y) -> float:
    """Frechet distance between Gaussians fitted to the rows of ``x`` (n, D) and ``y`` (m, D).

    ``d^2 = |m_x - m_y|^2 + tr(C_x) + tr(C_y) - 2 tr((C_x^1/2 C_y C_x^1/2)^1/2)``, with unbiased
    covariances. The trace of the matrix square root is computed from the eigenvalues of the
    symmetric matrix ``C_x^1/2 C_y C_x^1/2`` (no non-symmetric ``sqrtm``, so no complex parts to
    discard), in float64. It is a squared distance: the units of the features, squared. It is
    biased upwards for small sets (more so in many dimensions); compare figures computed with
    the same set sizes.
    """
    a, b = _rows("x", x), _rows("y", y)
    if a.shape[1] != b.shape[1]:
        raise ShapeError(f"x and y have {a.shape[1]} and {b.shape[1]} features; they must match")
    ca, cb = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))
    root = _psd_sqrt(ca)
    middle = root @ cb @ root
    cross = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp(min=0).sqrt().sum()
    d2 = (a.mean(0) - b.mean(0)).pow(2).sum() + ca.trace() + cb.trace() - 2 * cross
    return max(float(d2), 0.0)


def nearest_neighbour_distances(x, reference, *, chunk: int = 2048) -> torch.Tensor:
    """For each row of ``x``, the distance to its nearest row of ``reference``, as an RMS pixel difference.

    ``d_i = min_j |x_i - r_j|_2 / sqrt(D)`` over images flattened to D values: for images in
    [-1, 1] it is in pixel units (0.1 is a typical pixel off by 0.1, a twentieth of the range).
    ``reference`` is converted to float64 ``chunk`` rows at a time, so large training sets fit
    in memory.

    >>> import torch
    >>> r = torch.randn(50, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> nearest_neighbour_distances(r[:5], r).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0]
    >>> round(float(nearest_neighbour_distances(r[:1] + 0.5, r[:1])[0]), 6)
    0.5
    """
    a = _rows("x", x, 1)
    reference = torch.as_tensor(reference)
    if reference.ndim < 2 or reference.shape[0] < 1:
        raise ShapeError(f"reference has shape {tuple(reference.shape)}; expected (N, ...) with N >= 1")
    if reference[0].numel() != a.shape[1]:
        raise ShapeError(f"x has {a.shape[1]} values per image and the reference {reference[0].numel()}; they must match")
    best = torch.full((a.shape[0],), float("inf"), dtype=torch.float64)
    a2 = a.pow(2).sum(1, keepdim=True)
    for start in range(0, reference.shape[0], chunk):
        block = reference[start : start + chunk].reshape(-1, a.shape[1]).to(torch.float64)
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, clipped at 0 against rounding
        d2 = (a2 + block.pow(2).sum(1)[None] - 2 * a @ block.T).clamp_(min=0)
        best = torch.minimum(best, d2.min(1).values)
    return (best / a.shape[1]).sqrt()


def nearest_training_distances(x, train, flips: tuple[str, ...] = ()) -> torch.Tensor:
    """:func:`nearest_neighbour_distances` of images ``x`` (N, C, H, W) to ``train``, counting flipped training images too.

    ``flips`` names the augmentations the model saw (``"h"``, ``"v"``): a sample that copies a
    mirrored training image is a copy all the same. Flips are isometries, so the query is
    flipped instead of the (large) training set.
    """
    x = torch.as_tensor(x)
    dims = {"h": (-1,), "v": (-2,)}
    variants = [()] + [dims[f] for f in flips] + ([(-1, -2)] if {"h", "v"} <= set(flips) else [])
    return torch.stack([nearest_neighbour_distances(x.flip(d) if d else x, train) for d in variants]).min(0).values


def summary(distances) -> dict[str, float]:
    """``min``, ``p01`` (1st percentile), ``median`` and ``mean`` of a set of distances, rounded to 5 digits.

    >>> summary([0.0, 1.0, 2.0])
    {'min': 0.0, 'p01': 0.02, 'median': 1.0, 'mean': 1.0}
    """
    d = torch.as_tensor(distances, dtype=torch.float64).reshape(-1)
    if d.numel() == 0:
        raise DiffcoreError("summary needs at least one distance")
    return {
        "min": round(float(d.min()), 5),
        "p01": round(float(torch.quantile(d, 0.01)), 5),
        "median": round(float(d.median() if d.numel() % 2 else torch.quantile(d, 0.5)), 5),
        "mean": round(float(d.mean()), 5),
    }


__all__ = ["frechet_distance", "nearest_neighbour_distances", "nearest_training_distances", "summary"]
