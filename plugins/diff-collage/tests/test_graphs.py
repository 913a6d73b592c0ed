"""Graphs of windows: layouts, counting numbers, and one-line errors for bad ones."""

from __future__ import annotations

import json

import pytest
import torch

from diff_collage import graphs
from diff_collage.layout import Layout
from diffcore.errors import DiffcoreError


def cell_counts(g: graphs.Graph) -> torch.Tensor:
    """How many times each canvas cell is counted: windows once, separators by their numbers."""
    lay = Layout(g, tuple(g.size))
    count = lay.coverage.clone()
    for s in lay.separators:
        count.index_add_(0, s.canvas, torch.full_like(s.canvas, s.count))
    return count


@pytest.mark.parametrize(
    "g",
    [
        graphs.chain(5, 16, 4),
        graphs.chain(7, 16, 14),  # windows overlap far beyond their neighbours
        graphs.cycle(3, 16, 4),
        graphs.cycle(2, 16, 4),  # the two windows meet at both ends
        graphs.grid(3, 4, (8, 12), (2, 5)),
        graphs.grid(2, 3, 8, 3, wrap=True),
        graphs.chain(4, 10, 0),
    ],
    ids=["chain", "heavy-overlap", "cycle", "cycle-of-two", "grid", "wrapped-grid", "tiles"],
)
def test_every_cell_is_counted_once(g):
    assert bool((cell_counts(g) == 1).all())


def test_chain_cycle_and_grid_layouts():
    g = graphs.chain(4, 32, 8)
    assert g.length == (104,) and g.starts == ((0,), (24,), (48,), (72,))
    assert [(s.count, s.windows, s.shape) for s in g.separators] == [(-1, (0, 1), (8,)), (-1, (1, 2), (8,)), (-1, (2, 3), (8,))]
    assert g.borders() == ((24, 32, 48, 56, 72, 80),)
    c = graphs.cycle(4, 32, 8)
    assert c.length == (96,) and c.wrap == (True,)
    assert (0, 3) in [s.windows for s in c.separators]  # the seam: the last window overlaps the first
    assert c.borders() == ((0, 8, 24, 32, 48, 56, 72, 80),)
    assert c.window_indices(3)[0] == tuple(range(72, 96)) + tuple(range(8))
    gr = graphs.grid(2, 3, 8, 2)
    assert gr.length == (14, 20) and gr.grid_shape == (2, 3)
    counts = sorted(s.count for s in gr.separators)
    assert counts == [-1] * 7 + [1] * 2  # 3 vertical strips... 4 horizontal and 3 vertical, 2 corners
    corner = next(s for s in gr.separators if s.count == 1)
    assert corner.shape == (2, 2) and len(corner.windows) == 4


def test_a_tree_and_its_order():
    g = graphs.tree([[0], [8], [16]], [16], [32], edges=[[0, 1], [1, 2]])
    assert [(s.count, s.shape) for s in g.separators] == [(-1, (8,)), (-1, (8,))]
    # windows 0 and 2 overlap inside window 1: a junction tree, each cell still counted once
    jt = graphs.tree([[0], [6], [12]], [16], [28], edges=[[0, 1], [1, 2]])
    assert bool((cell_counts(jt) == 1).all())
    assert graphs.tree([[8], [0], [16]], [10], [26], edges=[[1, 0], [0, 2]]).order() == (0, 1, 2)
    assert graphs.tree([[8], [0], [16]], [10], [26], edges=[[0, 2], [1, 0]]).order() == (0, 1, 2)


def test_scaled_graph_is_the_layout_in_pixels():
    g = graphs.cycle(3, 8, 2).scaled([4])
    assert g.size == (32,) and g.length == (72,) and g.starts == ((0,), (24,), (48,)) and g.wrap == (True,)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: graphs.chain(4, 32, 32), "overlap 32 must be at least 0 and smaller than the window \\(32\\)"),
        (lambda: graphs.chain(4, 32, -1), "overlap -1 must be"),
        (lambda: graphs.chain(0, 32, 8), "at least one window"),
        (lambda: graphs.cycle(1, 32, 8), "not longer than one window"),
        (lambda: graphs.grid(2, 2, 16, 16), "smaller than the window"),
        (lambda: graphs.chain(2, 32, 8, axis=1), "axis counts from the end"),
        (lambda: graphs.tree([[0], [30]], [16], [40]), "window 1 at offset 30 along axis -1 lies outside the canvas"),
        (lambda: graphs.tree([[0], [4]], [16], [16], wrap=True), "window 0 lies inside window 1"),
        (lambda: graphs.tree([[0], [20]], [16], [40]), "covered by no window"),
        (lambda: graphs.tree([[0], [6], [12]], [16], [28], edges=[[0, 1], [1, 2], [0, 2]]), "edge \\(0, 2\\) closes a cycle"),
        (lambda: graphs.tree([[0], [12], [24]], [16], [40], edges=[[0, 1]]), "do not connect all 3 windows"),
        (lambda: graphs.tree([[0], [12], [24]], [16], [40], edges=[[0, 2], [0, 1]]), "do not overlap"),
        (lambda: graphs.tree([[0], [6], [12]], [16], [28], edges=[[0, 2], [2, 1]]), "must be joined by an edge"),
        (lambda: graphs.tree([[0], [0]], [16], [16]), "same place"),
    ],
)
def test_bad_graphs_fail_in_one_line(build, message):
    with pytest.raises(DiffcoreError, match=message) as err:
        build()
    assert "\n" not in str(err.value)


def test_a_graph_file(tmp_path):
    path = tmp_path / "three.json"
    path.write_text(json.dumps({"canvas": [32, 80], "window": [32, 32], "windows": [[0, 0], [0, 24], [0, 48]], "edges": [[0, 1], [1, 2]]}))
    g = graphs.load(path)
    assert g.kind == "tree" and g.axes == (-2, -1) and g.length == (32, 80) and len(g.separators) == 2
    assert graphs.load(path).to_dict()["edges"] == [[0, 1], [1, 2]]
    assert graphs.tree(**{"windows": g.starts, "size": g.size, "canvas": g.length}).kind == "layout"


@pytest.mark.parametrize(
    "content, message",
    [
        ({"canvas": [28], "window": [16], "windows": [[0], [6], [12]], "edges": [[0, 1], [1, 2], [2, 0]]}, "loop.json.*closes a cycle"),
        ({"canvas": [40], "window": [16], "windows": [[0], [12]]}, "loop.json.*covered by no window"),
        ({"canvas": [40], "window": [16]}, "loop.json' lacks windows"),
        ({"canvas": [40], "window": [16], "windows": [[0]], "colour": "red"}, "unknown keys colour"),
        ({"canvas": [40], "window": [16], "windows": [[0, 1]]}, "window 0 must be"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_bad_graph_files_fail_in_one_line(tmp_path, content, message):
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DiffcoreError, match=message) as err:
        graphs.load(path)
    assert "\n" not in str(err.value)


def test_unreadable_graph_files(tmp_path):
    with pytest.raises(DiffcoreError, match="does not exist"):
        graphs.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DiffcoreError, match="not readable JSON"):
        graphs.load(tmp_path / "bad.json")


def test_a_window_the_prior_cannot_take():
    with pytest.raises(DiffcoreError, match="a window this prior cannot take"):
        Layout(graphs.chain(3, 16, 4), (1, 32, 32))
    with pytest.raises(DiffcoreError, match="only 1 axes"):
        Layout(graphs.grid(2, 2, 8, 2), (8,))
