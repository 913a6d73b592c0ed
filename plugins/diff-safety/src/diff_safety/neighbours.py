"""Exact k-nearest-neighbour search over a training set of up to millions of items.

:class:`NeighbourIndex` holds the training set once (flattened, float32 or float16) and answers
``search(queries, k)`` with the ``k`` nearest items of each query, nearest first. Three metrics:

- ``"tiled-l2"``: Carlini et al.'s tiled L2 on images (:mod:`diff_safety.distances`);
- ``"l2"``: the root-mean-square difference over all values (images or feature vectors);
- ``"cosine"``: ``1 - cos(q, x)`` on feature vectors (:mod:`diff_safety.features`).

The search is brute force and exact, in blocks: for each block of ``chunk`` training items the
distances to all queries come from matrix products (``|q|^2 + |x|^2 - 2 q.x``, one product per
tile for the tiled metric), and a running top-k keeps the best ``k`` per query, so memory is
``queries x chunk`` whatever the training set's size. Time grows linearly with the training set:
``tools/bench/safety_nn.py`` measures it (docs/safety.md has the table).

With ``backend="faiss"`` (or ``"auto"`` where ``faiss`` is installed: ``pip install
"diff-safety[faiss]"``) the l2 and cosine metrics go through faiss's exact flat indexes
(``IndexFlatL2``, ``IndexFlatIP``), the same neighbours found with faiss's optimised kernels.
faiss has no tiled metric: ``"auto"`` then uses the torch search and ``"faiss"`` is refused.

>>> train = torch.arange(10.0).reshape(10, 1)
>>> found = NeighbourIndex(train, metric="l2").search(torch.tensor([[3.2], [8.9]]), k=2)
>>> found.indices.tolist(), [[round(d, 3) for d in row] for row in found.distances.tolist()]
([[3, 4], [9, 8]], [[0.2, 0.8], [0.1, 0.9]])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_safety.distances import TileLayout, check_quantile, combine_tiles, tile_distances
from diffcore.errors import DiffcoreError, ShapeError

METRICS = ("tiled-l2", "l2", "cosine")
BACKENDS = ("auto", "torch", "faiss")
WORK_ELEMENTS = 1 << 24  # per block: queries x chunk x tiles distances (64 MiB of float32)


@dataclass(frozen=True)
class Neighbours:
    """The ``k`` nearest training items of each query: ``distances`` (Q, k) ascending, ``indices`` (Q, k) int64."""

    distances: torch.Tensor
    indices: torch.Tensor

    @property
    def nearest(self) -> torch.Tensor:
        """Distance to the nearest item, (Q,)."""
        return self.distances[:, 0]


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class NeighbourIndex:
    """An exact nearest-neighbour index over ``data`` (N, ...) (see the module docstring).

    Args:
        data: training images (N, C, H, W) for ``tiled-l2``; any (N, ...) for ``l2`` (flattened);
            feature vectors (N, D) for ``cosine``.
        metric: ``"tiled-l2"``, ``"l2"`` or ``"cosine"``.
        grid, quantile: the tiles per side and the quantile over tiles of ``tiled-l2``.
        backend: ``"auto"``, ``"torch"`` or ``"faiss"``.
        storage: dtype the training set is kept in (``torch.float16`` halves the memory of a large
            set; distances are computed in float32 either way).
        chunk: training items per block (default: what keeps a block near 64 MiB).
    """

    def __init__(
        self,
        data,
        *,
        metric: str = "tiled-l2",
        grid: int = 4,
        quantile: float = 1.0,
        backend: str = "auto",
        storage=torch.float32,
        chunk: int | None = None,
    ):
        if metric not in METRICS:
            raise DiffcoreError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        if backend not in BACKENDS:
            raise DiffcoreError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        data = torch.as_tensor(data)
        if data.ndim < 2 or data.shape[0] < 1:
            raise ShapeError(f"the training set has shape {tuple(data.shape)}; expected (N, ...) with N >= 1")
        if any(not torch.isfinite(part).all() for part in data.split(65536)):  # in blocks: no copy of a large set
            raise DiffcoreError("the training set holds non-finite values")
        self.metric, self.size, self.item_shape = metric, int(data.shape[0]), tuple(data.shape[1:])
        self.quantile = check_quantile(quantile)
        self.layout = TileLayout.of(self.item_shape, grid) if metric == "tiled-l2" else None
        if backend == "faiss" and metric == "tiled-l2":
            raise DiffcoreError("faiss has no tiled L2; use backend 'torch' (or 'auto') for metric 'tiled-l2'")
        if backend == "faiss" and not faiss_available():
            raise ImportError('backend "faiss" needs faiss: pip install "diff-safety[faiss]"')
        self.backend = "faiss" if backend == "faiss" or (backend == "auto" and metric != "tiled-l2" and faiss_available()) else "torch"
        self.chunk = chunk
        flat = self._prepare(data.float())
        if self.backend == "faiss":
            import faiss

            vectors = flat.contiguous().numpy()
            self._faiss = (faiss.IndexFlatIP if metric == "cosine" else faiss.IndexFlatL2)(vectors.shape[1])
            self._faiss.add(vectors)
            self.data = None
        else:
            self.data = flat.to(storage).contiguous()

    @property
    def dim(self) -> int:
        return int(torch.tensor(self.item_shape).prod())

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten (and permute into tiles, or normalise for cosine) items of the index's shape."""
        if tuple(x.shape[1:]) != self.item_shape:
            raise ShapeError(
                f"queries have shape {tuple(x.shape)}; expected (Q, {', '.join(map(str, self.item_shape))}) like the training set"
            )
        if self.layout is not None:
            return self.layout.flatten(x)
        flat = x.reshape(x.shape[0], -1)
        if self.metric == "cosine":
            return flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return flat

    def _block(self, queries: int) -> int:
        if self.chunk is not None:
            return max(1, int(self.chunk))
        tiles = self.layout.tiles if self.layout is not None else 1
        return max(256, WORK_ELEMENTS // max(1, queries * tiles))

    def search(self, queries, k: int = 1) -> Neighbours:
        """The ``k`` nearest training items of each query (``k`` is capped at the training set's size)."""
        q = torch.as_tensor(queries).float()
        if q.ndim < 2 or q.shape[0] < 1:
            raise ShapeError(f"queries have shape {tuple(q.shape)}; expected (Q, ...) with Q >= 1")
        if not torch.isfinite(q).all():
            raise DiffcoreError("the queries hold non-finite values")
        if not isinstance(k, int) or k < 1:
            raise DiffcoreError(f"k must be a positive integer; got {k!r}")
        k = min(k, self.size)
        flat = self._prepare(q)
        if self.backend == "faiss":
            return self._search_faiss(flat, k)
        best_d = torch.full((flat.shape[0], k), float("inf"))
        best_i = torch.zeros((flat.shape[0], k), dtype=torch.int64)
        block = self._block(flat.shape[0])
        for start in range(0, self.size, block):
            chunk = self.data[start : start + block].float()
            d = self._distances(flat, chunk)
            kk = min(k, d.shape[1])
            vals, idx = torch.topk(d, kk, dim=1, largest=False, sorted=False)
            cand_d = torch.cat([best_d, vals], 1)
            cand_i = torch.cat([best_i, idx + start], 1)
            best_d, pos = torch.topk(cand_d, k, dim=1, largest=False, sorted=True)
            best_i = torch.gather(cand_i, 1, pos)
        return Neighbours(best_d, best_i)

    def _distances(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.metric == "tiled-l2":
            return combine_tiles(tile_distances(q, x, self.layout), self.quantile)
        if self.metric == "cosine":
            return (1 - q @ x.T).clamp_(min=0)
        d2 = q.pow(2).sum(1, keepdim=True) + x.pow(2).sum(1)[None] - 2 * q @ x.T
        return (d2.clamp_(min=0) / q.shape[1]).sqrt_()

    def _search_faiss(self, flat: torch.Tensor, k: int) -> Neighbours:
        d, i = self._faiss.search(flat.contiguous().numpy(), k)
        d, i = torch.from_numpy(d).float(), torch.from_numpy(i).long()
        if self.metric == "cosine":
            return Neighbours((1 - d).clamp_(min=0), i)
        return Neighbours((d.clamp_(min=0) / flat.shape[1]).sqrt_(), i)


__all__ = ["BACKENDS", "METRICS", "NeighbourIndex", "Neighbours", "faiss_available"]
