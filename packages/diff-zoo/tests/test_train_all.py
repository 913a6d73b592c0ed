"""``python -m diff_zoo.train_all``: trains the priors it is given, reports, fails loudly."""

from __future__ import annotations

import json

import diff_zoo.recipes
from diff_zoo import train_all


def test_train_all_trains_in_sequence_and_reports(monkeypatch, tmp_path, tiny_recipe, capsys):
    for name in ("digits", "textures"):
        monkeypatch.setitem(diff_zoo.recipes.RECIPES, name, tiny_recipe(name))
    code = train_all.main(["--device", "cpu", "--out", str(tmp_path), "--only", "digits", "textures", "--iterations", "2", "--no-progress"])
    assert code == 0
    report = json.loads((tmp_path / "train_all.json").read_text())
    assert report["failed"] == [] and report["jobs"] == 1 and sorted(report["priors"]) == ["digits", "textures"]
    assert all(p["iterations"] == 2 for p in report["priors"].values())
    assert (tmp_path / "digits" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert "all done" in capsys.readouterr().out


def test_train_all_exits_non_zero_when_a_prior_fails(monkeypatch, tmp_path, tiny_recipe):
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "someone-elses.txt").write_text("not a zoo output")  # train() refuses to overwrite it
    monkeypatch.setitem(diff_zoo.recipes.RECIPES, "digits", tiny_recipe("digits"))
    code = train_all.main(["--device", "cpu", "--out", str(tmp_path), "--only", "digits", "--iterations", "1", "--no-progress"])
    assert code == 1
    report = json.loads((tmp_path / "train_all.json").read_text())
    assert report["failed"] == ["digits"] and "not an empty folder" in report["priors"]["digits"]["error"]
