"""Near-duplicate groups in a training set: the data that diffusion models memorise first.

Carlini et al. (2023, sec. 7) and Somepalli et al. (2023b, "Understanding and Mitigating Copying
in Diffusion Models") find extraction concentrated on images duplicated in the training data.
:func:`duplicate_groups` finds them: each image's ``k`` nearest other images (exact search,
:class:`~diff_safety.neighbours.NeighbourIndex`, tiled L2 by default) closer than ``threshold``
are joined, and the connected components with two or more images are the groups (union-find),
largest first.

>>> x = torch.zeros(6, 1, 4, 4); x[1] = 0.01; x[2:4] = 1.0; x[4] = -1.0; x[5] = 0.5
>>> [g.indices for g in duplicate_groups(x, threshold=0.05, grid=2)]
[(0, 1), (2, 3)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_safety.neighbours import NeighbourIndex
from diffcore.errors import DiffcoreError


@dataclass(frozen=True)
class DuplicateGroup:
    """Indices of near-identical training images (ascending) and the largest distance of an edge joining them."""

    indices: tuple[int, ...]
    max_distance: float

    @property
    def size(self) -> int:
        return len(self.indices)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def duplicate_groups(
    images, *, threshold: float = 0.05, k: int = 16, metric: str = "tiled-l2", grid: int = 4, backend: str = "auto", batch: int = 4096
) -> list[DuplicateGroup]:
    """Groups of near-duplicate images in ``images`` (N, ...) (see the module docstring), largest first."""
    images = torch.as_tensor(images).float()
    n = images.shape[0]
    if n == 0:
        raise DiffcoreError("the training set is empty")
    if threshold < 0:
        raise DiffcoreError(f"threshold must be >= 0; got {threshold!r}")
    index = NeighbourIndex(images, metric=metric, grid=grid, backend=backend)
    parent = list(range(n))
    worst: dict[tuple[int, int], float] = {}
    for start in range(0, n, batch):
        found = index.search(images[start : start + batch], k=min(k + 1, n))
        for row, (ds, js) in enumerate(zip(found.distances.tolist(), found.indices.tolist())):
            i = start + row
            for d, j in zip(ds, js):
                if j == i or d > threshold:
                    continue
                a, b = _find(parent, i), _find(parent, j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
                key = (min(i, j), max(i, j))
                worst[key] = max(worst.get(key, 0.0), d)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(_find(parent, i), []).append(i)
    edge_max: dict[int, float] = {}
    for (i, _), d in worst.items():
        root = _find(parent, i)
        edge_max[root] = max(edge_max.get(root, 0.0), d)
    groups = [DuplicateGroup(tuple(m), edge_max.get(root, 0.0)) for root, m in members.items() if len(m) > 1]
    return sorted(groups, key=lambda g: (-g.size, g.indices[0]))


def duplicate_summary(groups: list[DuplicateGroup], total: int) -> dict:
    """Counts for a report: groups, images in groups, the largest group and a histogram of group sizes."""
    sizes: dict[int, int] = {}
    for g in groups:
        sizes[g.size] = sizes.get(g.size, 0) + 1
    return {
        "images": total,
        "groups": len(groups),
        "images_in_groups": sum(g.size for g in groups),
        "largest_group": max((g.size for g in groups), default=1),
        "group_sizes": {str(s): c for s, c in sorted(sizes.items())},
    }


__all__ = ["DuplicateGroup", "duplicate_groups", "duplicate_summary"]
