"""The clique test of Carlini et al. (2023, sec. 4.2): a condition is memorised when many of its
generations are near-identical to each other.

Generate ``M`` images for one condition (a prompt, a class) and join two generations by an edge
when their tiled L2 distance (:mod:`diff_safety.distances`) is below ``threshold``; the condition
is flagged when the graph holds a clique of at least ``k`` generations (Carlini et al.: 500
generations per prompt, ``k = 10``). A model that reproduces a memorised training image emits
the same picture again and again, while a model that generalises scatters its generations. The
test needs no training data, so it also runs where the training set is not available.

The largest clique is found exactly by Bron-Kerbosch with Tomita et al. (2006)'s pivot rule
(worst-case exponential, fast on the sparse graphs these tests produce; a search that explores
more than ``max_calls`` branches stops with an error rather than hang).

>>> adj = torch.zeros(6, 6, dtype=torch.bool)
>>> for i, j in [(0, 1), (0, 2), (1, 2), (2, 3), (4, 5)]:
...     adj[i, j] = adj[j, i] = True
>>> largest_clique(adj)
[0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from diff_safety.distances import tiled_distance
from diffcore.errors import DiffcoreError, ShapeError


def largest_clique(adjacency: torch.Tensor, *, max_calls: int = 1_000_000) -> list[int]:
    """The vertices of a maximum clique of the undirected graph ``adjacency`` (M, M) bool, ascending."""
    adj = torch.as_tensor(adjacency, dtype=torch.bool)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ShapeError(f"adjacency has shape {tuple(adj.shape)}; expected a square (M, M) matrix")
    m = adj.shape[0]
    neighbours = [set(torch.nonzero(adj[i]).flatten().tolist()) - {i} for i in range(m)]
    best: list[int] = []
    calls = 0

    def expand(r: list[int], p: set[int], x: set[int]) -> None:
        nonlocal best, calls
        calls += 1
        if calls > max_calls:
            raise DiffcoreError(
                f"the clique search explored more than {max_calls} branches; lower the distance threshold or the number of generations"
            )
        if not p and not x:
            if len(r) > len(best):
                best = sorted(r)
            return
        if len(r) + len(p) <= len(best):
            return  # cannot beat the best clique found
        pivot = max(p | x, key=lambda u: len(p & neighbours[u]))
        for v in list(p - neighbours[pivot]):
            expand([*r, v], p & neighbours[v], x & neighbours[v])
            p.discard(v)
            x.add(v)

    expand([], set(range(m)), set())
    return best


@dataclass(frozen=True)
class CliqueResult:
    """For one condition: its ``generations`` count, the ``clique`` (indices into its generations), ``memorised``."""

    condition: str
    generations: int
    clique: tuple[int, ...]
    memorised: bool


def clique_test(
    images: torch.Tensor, conditions: Sequence, *, threshold: float = 0.1, k: int = 10, grid: int = 4, quantile: float = 1.0
) -> list[CliqueResult]:
    """Carlini et al.'s clique test on generations ``images`` (M, C, H, W) grouped by ``conditions`` (M labels or prompts)."""
    images = torch.as_tensor(images).float()
    if len(conditions) != images.shape[0]:
        raise ShapeError(f"{len(conditions)} conditions for {images.shape[0]} generations; give one per generation")
    if not isinstance(k, int) or k < 2:
        raise DiffcoreError(f"k (the clique size that flags a condition) must be an integer >= 2; got {k!r}")
    keys = [str(c.item() if isinstance(c, torch.Tensor) else c) for c in conditions]
    results = []
    for key in dict.fromkeys(keys):
        members = [i for i, c in enumerate(keys) if c == key]
        group = images[members]
        adj = tiled_distance(group, group, grid=grid, quantile=quantile) < threshold
        adj.fill_diagonal_(False)
        clique = largest_clique(adj)
        results.append(CliqueResult(key, len(members), tuple(members[i] for i in clique), len(clique) >= k))
    return results


__all__ = ["CliqueResult", "clique_test", "largest_clique"]
