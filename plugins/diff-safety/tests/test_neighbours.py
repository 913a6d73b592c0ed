"""Exact nearest-neighbour search against brute force, tiled distances against a per-tile loop."""

from __future__ import annotations

import pytest
import torch

from diff_safety.distances import TileLayout, relative_score, tiled_distance
from diff_safety.neighbours import NeighbourIndex, faiss_available
from diffcore.errors import DiffcoreError, ShapeError


def _images(n, shape=(2, 10, 10), seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _tiled_loop(a, b, grid, quantile=1.0):
    """Tiled L2 the slow way: cut both images into the same tiles, RMS per tile, then max / quantile."""
    _, h, w = a.shape
    values = []
    for rows in torch.tensor_split(torch.arange(h), grid):
        for cols in torch.tensor_split(torch.arange(w), grid):
            diff = a[:, rows][:, :, cols] - b[:, rows][:, :, cols]
            values.append(diff.double().pow(2).mean().sqrt())
    values = torch.stack(values)
    return float(values.max() if quantile >= 1 else torch.quantile(values, quantile))


@pytest.mark.parametrize("grid", [1, 3, 4])
def test_tiled_distance_matches_a_per_tile_loop(grid):
    a, b = _images(3), _images(4, seed=1)
    got = tiled_distance(a, b, grid=grid)
    want = torch.tensor([[_tiled_loop(x, y, grid) for y in b] for x in a], dtype=torch.float64)
    assert torch.allclose(got.double(), want, atol=1e-5)
    soft = tiled_distance(a, b, grid=grid, quantile=0.5)
    assert torch.allclose(
        soft.double(), torch.tensor([[_tiled_loop(x, y, grid, 0.5) for y in b] for x in a], dtype=torch.float64), atol=1e-5
    )


def test_tile_layout_covers_every_value_once():
    layout = TileLayout.of((3, 10, 7), 3)  # 10 and 7 not divisible by 3: unequal edge tiles
    assert sorted(layout.order.tolist()) == list(range(3 * 10 * 7))
    assert sum(layout.sizes) == 210 and layout.tiles == 9


@pytest.mark.parametrize("metric", ["tiled-l2", "l2", "cosine"])
def test_search_is_exact_across_chunks(metric):
    train, queries = _images(53), _images(9, seed=2)
    if metric == "cosine":
        train, queries = train.reshape(53, -1), queries.reshape(9, -1)
    index = NeighbourIndex(train, metric=metric, grid=3, chunk=7, backend="torch")  # 8 blocks, k > chunk
    found = index.search(queries, k=12)
    if metric == "tiled-l2":
        full = tiled_distance(queries, train, grid=3)
    elif metric == "l2":
        full = torch.cdist(queries.reshape(9, -1).double(), train.reshape(53, -1).double()) / (200**0.5)
    else:
        qn, tn = torch.nn.functional.normalize(queries.double(), dim=1), torch.nn.functional.normalize(train.double(), dim=1)
        full = 1 - qn @ tn.T
    want_d, want_i = torch.sort(full.double(), dim=1)
    assert torch.allclose(found.distances.double(), want_d[:, :12], atol=1e-5)
    assert torch.equal(found.indices, want_i[:, :12])
    assert found.distances.shape == (9, 12) and torch.all(found.distances[:, 1:] >= found.distances[:, :-1])


def test_k_is_capped_at_the_training_set_and_float16_storage_agrees():
    train = _images(5)
    assert NeighbourIndex(train).search(train, k=50).indices.shape == (5, 5)
    exact = NeighbourIndex(train, metric="l2").search(train[:2] + 0.01, k=3)
    half = NeighbourIndex(train, metric="l2", storage=torch.float16).search(train[:2] + 0.01, k=3)
    assert torch.equal(exact.indices, half.indices)
    assert torch.allclose(exact.distances, half.distances, atol=2e-3)


def test_bad_input_is_one_line():
    with pytest.raises(DiffcoreError, match="unknown metric"):
        NeighbourIndex(_images(3), metric="l1")
    with pytest.raises(ShapeError, match="like the training set"):
        NeighbourIndex(_images(3)).search(_images(2, shape=(1, 10, 10)))
    with pytest.raises(DiffcoreError, match="faiss has no tiled L2"):
        NeighbourIndex(_images(3), backend="faiss")
    with pytest.raises(DiffcoreError, match="grid must be"):
        NeighbourIndex(_images(3), grid=11)


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_faiss_finds_the_same_neighbours(metric):
    train, queries = _images(200).reshape(200, -1), _images(10, seed=3).reshape(10, -1)
    ours = NeighbourIndex(train, metric=metric, backend="torch").search(queries, k=5)
    theirs = NeighbourIndex(train, metric=metric, backend="faiss").search(queries, k=5)
    assert torch.equal(ours.indices, theirs.indices)
    assert torch.allclose(ours.distances, theirs.distances, atol=1e-4)


def test_relative_score_is_carlini_eq_1():
    d = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [0.2, 0.4, 0.6]])
    assert torch.allclose(relative_score(d, alpha=0.5), torch.tensor([0.0, 2.0, 0.2 / (0.5 * 0.4)]))
    assert torch.allclose(relative_score(d, alpha=1.0, reference="nth"), torch.tensor([0.0, 1.0, 0.2 / 0.6]))
    assert float(relative_score(torch.zeros(1, 4))[0]) == 0.0  # n identical neighbours at distance 0: a copy
