"""The tour section runs on the shipped texture prior, quickly, and writes its pictures and table."""

from __future__ import annotations

import csv
import json

import pytest


def test_collage_tour_section(tmp_path):
    pytest.importorskip("diff_zoo")
    from diff_zoo.priors import is_trained, weights_folder

    if not is_trained(weights_folder("textures")):
        pytest.skip("zoo:textures weights are not shipped")
    from diffcore.tour import run_tour

    run_tour(tmp_path, only=["collage"], quick=True)
    (section,) = json.loads((tmp_path / "report.json").read_text())["sections"]
    assert section["status"] == "ok", section["error"]
    assert set(section["files"]) == {"collage/strip.png", "collage/loop.png", "collage/grid.png", "collage/seams.csv"}
    rows = list(csv.DictReader((tmp_path / "collage" / "seams.csv").open()))
    assert [r["method"] for r in rows] == ["diffcollage", "multidiffusion"] * 3
    calls = {(r["canvas"].split()[0], r["method"]): float(r["network calls per step"]) for r in rows}
    assert calls[("strip", "multidiffusion")] == 1 and calls[("strip", "diffcollage")] == 2 and calls[("grid", "diffcollage")] == 4
    seams = {(r["canvas"].split()[0], r["method"]): float(r["seam score"]) for r in rows}
    assert seams[("strip", "diffcollage")] <= seams[("strip", "multidiffusion")], seams
    assert len(section["metrics"]) == 3
