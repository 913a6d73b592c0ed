"""The ``collage`` prior built from a spec string alone (for specs, the command line and solvers)."""

from __future__ import annotations

import pytest
import torch

import diffcore
from diffcore.errors import DiffcoreError

COV = [[0.8 ** abs(i - j) for j in range(8)] for i in range(8)]


def test_the_plugin_registers_the_prior_the_command_and_the_tour():
    info = {p.name: p for p in diffcore.plugins()}["collage"]
    assert info.error is None
    assert info.registered["prior"] == ["collage"] and info.registered["tour"] == ["collage"]
    comp = {c.name: c for c in diffcore.available("prior")}["collage"]
    assert comp.plugin == "collage" and comp.summary.startswith("A large canvas from a prior on small windows")
    assert {
        "base",
        "graph",
        "windows",
        "rows",
        "cols",
        "overlap",
        "method",
        "separator",
        "separator_prior",
        "labels",
        "prompts",
        "max_batch",
        "base_options",
        "device",
        "dtype",
    } <= set(comp.options())


def test_a_gaussian_base_given_by_options():
    prior = diffcore.create(
        "prior", "collage:base=gaussian,windows=5,overlap=3,separator=mode", base_options={"mean": [0.0] * 8, "cov": COV}
    )
    assert prior.sample_shape == (28,) and prior.method == "diffcollage" and prior.separators.strategy == "mode"
    exact = diffcore.create(
        "prior",
        "collage",
        base="gaussian",
        base_options={"mean": [0.0] * 8, "cov": COV},
        graph="cycle",
        windows=3,
        overlap=2,
        method="multidiffusion",
    )
    assert exact.sample_shape == (18,) and exact.graph.wrap == (True,)
    x = diffcore.sample(exact, 2, steps=3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 18)


def test_zoo_specs_with_colons_in_the_base():
    pytest.importorskip("diff_zoo")
    grid = diffcore.create("prior", "collage:base=zoo:textures,graph=grid,rows=2,cols=3,overlap=8")
    assert grid.sample_shape == (1, 56, 80) and grid.graph.grid_shape == (2, 3)
    assert (
        grid.accepts == frozenset({"labels"}) and grid.null_cond.labels.tolist() == [3] and grid.class_names == ("brick", "grass", "gravel")
    )
    strip = diffcore.create("prior", "collage:base='zoo:textures:clip_x0=false',windows=3,labels='brick*2,gravel'")
    assert strip.sample_shape == (1, 32, 64) and strip.consistent and strip.accepts == frozenset()  # overlap: half a window
    assert [int(c.labels) for c in strip.conds] == [0, 0, 2]
    one = diffcore.create("prior", "collage:base=zoo:textures,windows=2,label=grass,method=mixture")
    assert [int(c.labels) for c in one.conds] == [1, 1]


@pytest.mark.parametrize(
    "options, says",
    [
        ({"graph": "spiral"}, "unknown graph 'spiral'"),
        ({"graph": "grid"}, "a grid needs samples with two axes"),
        ({"windows": 3, "overlap": 8}, "overlap 8 must be at least 0 and smaller than the window \\(8\\)"),
        ({"axis": -2}, "axis -2 is not a sample axis"),
        ({"base_options": "{oops"}, "base_options must be a dict or a JSON object"),
        ({"method": "average"}, "unknown collage method"),
        ({"labels": [1, 2]}, "does not take class labels"),
    ],
)
def test_bad_specs_are_one_line(options, says):
    base = {"mean": [0.0] * 8, "cov": COV}
    options = {"base": "gaussian", "base_options": base, "separator": "mode", **options}
    with pytest.raises(DiffcoreError, match=says) as err:
        diffcore.create("prior", "collage", **options)
    assert "\n" not in str(err.value)
    with pytest.raises(DiffcoreError, match="give one of label, labels"):
        diffcore.create("prior", "collage", base="gaussian", base_options=base, label=1, labels=[1])
