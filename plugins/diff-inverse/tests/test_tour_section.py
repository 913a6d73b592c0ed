"""The tour section runs on the shipped digits prior and the solvers beat the pseudo-inverse."""

import csv
import json

import pytest


def test_inverse_tour_section(tmp_path):
    pytest.importorskip("diff_zoo")
    from diff_zoo.priors import weights_folder

    if not (weights_folder("digits") / "unet").is_dir():
        pytest.skip("zoo:digits weights are not shipped")
    from diffcore.tour import run_tour

    run_tour(tmp_path, only=["inverse"], quick=True)
    (section,) = json.loads((tmp_path / "report.json").read_text())["sections"]
    assert section["status"] == "ok", section["error"]
    rows = {r["operator"]: r for r in csv.DictReader((tmp_path / "inverse" / "digits-psnr.csv").open())}
    for op in ("super-resolution x2", "Gaussian deblur", "inpaint (centre box)", "denoise"):
        assert float(rows[op]["ddrm"]) > float(rows[op]["pseudo-inverse"]) + 2, rows[op]
    assert float(rows["super-resolution x2"]["ddnm+"]) > float(rows["super-resolution x2"]["pseudo-inverse"]) + 5
    sw = {r["solver"]: float(r["SW"]) for r in csv.DictReader((tmp_path / "inverse" / "gmm-cell.csv").open())}
    assert sw["mcgdiff"] < sw["ddrm"] < sw["prior"] and sw["floor"] < sw["mcgdiff"]


def test_tour_section_skips_the_zoo_part_cleanly_without_diff_zoo(tmp_path, monkeypatch):
    """Without diff-zoo (the `zoo` extra) the section says so and still runs its Gaussian-mixture cell."""
    from diff_inverse import zoo
    from diffcore.tour import run_tour

    monkeypatch.setattr(zoo, "available", lambda: False)
    run_tour(tmp_path, only=["inverse"], quick=True)
    (section,) = json.loads((tmp_path / "report.json").read_text())["sections"]
    assert section["status"] == "ok", section["error"]
    assert not (tmp_path / "inverse" / "digits-psnr.csv").exists() and (tmp_path / "inverse" / "gmm-cell.csv").exists()
    assert "diff-inverse[zoo]" in (tmp_path / "index.html").read_text().replace("&quot;", '"')
