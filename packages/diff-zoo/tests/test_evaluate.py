"""The evaluation on smoke-trained models: shapes, determinism, the files it writes, the CLI and the tour section."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from click.testing import CliRunner

import diff_zoo.recipes
from diff_zoo import priors
from diff_zoo.card import render_card
from diff_zoo.cli import zoo
from diff_zoo.evaluate import CHECKS, Protocol, draw, evaluate, evaluate_and_write, load_prior, measure, weights_sha256
from diff_zoo.recipes import RECIPES
from diff_zoo.references import References
from diff_zoo.train import train


def _json_roundtrip(value):
    return json.loads(json.dumps(value))


@pytest.fixture(scope="session")
def evaluated_digits(trained_digits, tmp_path_factory):
    """The tiny digits model measured with 32 images per set, its outputs written to a folder of their own."""
    folder, _ = trained_digits
    out = tmp_path_factory.mktemp("evaluated")
    metrics, written = evaluate_and_write("digits", folder, out=out / "card", docs=out / "docs", n=32)
    return folder, out, metrics, written


def test_digits_metrics_have_every_figure_of_the_card(evaluated_digits):
    folder, _, metrics, _ = evaluated_digits
    assert metrics == _json_roundtrip(metrics)  # plain JSON
    assert metrics["weights_sha256"] == weights_sha256(folder)
    assert metrics["protocol"]["n"] == 32 and metrics["protocol"]["steps"] == 50 and metrics["protocol"]["guidance_scale"] == 2.0
    f = metrics["figures"]
    for key in ("class_accuracy_unguided", "class_accuracy_guided"):
        assert 0 <= f[key] <= 1 and (f[key] * 32) == pytest.approx(round(f[key] * 32), abs=1e-3)  # a share of 32
    for key in ("frechet_unguided", "frechet_guided", "frechet_train_vs_held_out"):
        assert f[key] >= 0
    for key in ("nearest_unguided", "nearest_guided", "nearest_held_out"):
        s = f[key]
        assert set(s) == {"min", "p01", "median", "mean"} and 0 <= s["min"] <= s["p01"] <= s["median"]
    assert metrics["classifier"]["test_accuracy"] >= 0.95
    assert metrics["timing"]["seconds"] > 0 and metrics["timing"]["samples"] == 16 and metrics["timing"]["guided"]
    assert metrics["check"]["protocol"] == dataclasses.asdict(CHECKS["digits"])
    assert set(metrics["check"]["figures"]) == {k for k in f if not k.startswith("frechet_train") and k != "nearest_held_out"}
    assert (
        "of guided samples (scale 2) labelled" in metrics["headline"]["text"] and metrics["headline"]["value"] == f["class_accuracy_guided"]
    )


def test_evaluation_writes_metrics_the_card_and_the_docs_page(evaluated_digits):
    folder, out, metrics, written = evaluated_digits
    names = sorted(p.name for p in written)
    assert names == ["README.md", "digits.md", "digits.png", "metrics.json"]
    assert json.loads((out / "card" / "metrics.json").read_text()) == metrics
    card = (out / "card" / "README.md").read_text()
    assert card == render_card(RECIPES["digits"], priors.read_record(folder), metrics)
    assert "## Measurements on held-out data" in card and "| samples, guided (scale 2) |" in card and "3 steps" in card
    page = (out / "docs" / "digits.md").read_text()
    assert "![samples (left) next to held-out data (right)](digits.png)" in page
    assert (out / "docs" / "digits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) not in page + card + json.dumps(metrics)  # no paths of this machine in the files
    assert not (folder / "metrics.json").exists()  # --out keeps the evaluated folder as it was


def test_measurements_are_deterministic_for_a_seed(trained_digits):
    folder, _ = trained_digits
    prior = load_prior("digits", folder)
    refs = References("digits", n=16)
    protocol = Protocol(n=16, steps=5, seed=3)
    a, samples = measure(prior, refs, protocol)
    b, again = measure(prior, refs, protocol)
    assert a == b and torch.equal(samples["guided"], again["guided"])
    assert samples["unguided"].shape == (16, 1, 16, 16) and samples["guided"].min() >= -1 and samples["guided"].max() <= 1
    other, _ = measure(prior, refs, dataclasses.replace(protocol, seed=4))
    assert other != a
    # batches are seeded one by one: the first batch of a larger draw is a smaller draw
    recipe = RECIPES["digits"]
    assert torch.equal(draw(prior, recipe, 5, steps=3, seed=7, batch=4)[:4], draw(prior, recipe, 4, steps=3, seed=7))


@pytest.mark.parametrize("name", ["textures", "phantoms"])
def test_unlabelled_measurements_on_a_tiny_model(name, tmp_path, tiny_recipe, monkeypatch):
    monkeypatch.setitem(diff_zoo.recipes.RECIPES, name, tiny_recipe(name))
    train(tiny_recipe(name), tmp_path / name, seed=0, progress=False, iterations=2, batch_size=3)
    metrics, samples = evaluate(name, tmp_path / name, n=16, timing=False)
    f = metrics["figures"]
    keys = {"frechet_held_out", "frechet_train", "frechet_gaussian_vs_held_out", "frechet_gaussian_vs_train"}
    assert keys | {"frechet_train_vs_held_out", "frechet_train_vs_train"} <= set(f)
    assert all(f[k] >= 0 for k in keys)
    assert set(metrics["check"]["figures"]) == ({"frechet_held_out", "nearest_unguided"} if CHECKS[name].nearest else {"frechet_held_out"})
    assert samples["unguided"].shape == (16, 1, 32, 32)
    assert samples["gaussian"].shape == samples["unguided"].shape
    # a 2-step model draws noise: far from the held-out data, much farther than the real training images
    assert f["frechet_held_out"] > f["frechet_train_vs_held_out"]
    assert metrics["features"]["names"][0] == "log contrast" and "Frechet distance of image statistics" in metrics["headline"]["text"]
    card = render_card(tiny_recipe(name), None, metrics)
    assert "| Gaussian fitted to the training data |" in card


def test_zoo_evaluate_and_card_commands(trained_digits, tmp_path, monkeypatch):
    folder, _ = trained_digits
    copy = tmp_path / "digits"
    shutil.copytree(folder, copy)
    result = CliRunner().invoke(zoo, ["evaluate", "digits", "--path", str(copy), "--n", "16", "--no-docs"])
    assert result.exit_code == 0, result.output
    assert "guided samples (scale 2) labelled as their class" in result.output
    assert {"metrics.json", "README.md"} <= {p.name for p in copy.iterdir()}
    card = CliRunner().invoke(zoo, ["card", "digits", "--path", str(copy)])
    assert card.exit_code == 0 and "| samples, unguided |" in card.output
    monkeypatch.setattr(priors, "WEIGHTS_DIR", tmp_path)  # the same folder as shipped weights
    shipped = CliRunner().invoke(zoo, ["card", "digits"])
    assert shipped.output == card.output
    bad = CliRunner().invoke(zoo, ["evaluate", "digits", "--path", str(copy), "--n", "4"])
    assert bad.exit_code != 0


def test_tour_section_shows_shipped_priors_and_lists_the_others(evaluated_digits, tmp_path, monkeypatch):
    from diffcore.tour import Section, run_section

    folder, out, _, _ = evaluated_digits
    weights = tmp_path / "weights"
    shutil.copytree(folder, weights / "digits")
    shutil.copy(out / "card" / "metrics.json", weights / "digits" / "metrics.json")
    monkeypatch.setattr(priors, "WEIGHTS_DIR", weights)
    from diff_zoo.plugin import tour

    result = run_section(Section("zoo", tour), tmp_path / "report", quick=True)
    assert result.status == "ok", result.traceback
    pictures = [b for b in result.blocks if type(b).__name__ == "_Picture"]
    assert [p.src for p in pictures] == ["zoo/digits.png"]
    assert "of guided samples (scale 2) labelled" in pictures[0].caption
    metrics = {b.name: (b.value, b.unit) for b in result.blocks if type(b).__name__ == "_Metric"}
    assert list(metrics) == ["zoo:digits guided samples labelled as their class"]
    accuracy = json.loads((out / "card" / "metrics.json").read_text())["headline"]["value"]
    assert metrics["zoo:digits guided samples labelled as their class"] == (round(100 * accuracy, 1), "%")  # a percentage, not a fraction
    text = " ".join(b.markdown for b in result.blocks if type(b).__name__ == "_Text")
    assert "Not shipped yet" in text and "`zoo:phantoms`" in text and "`zoo:digits`" not in text

    monkeypatch.setattr(priors, "WEIGHTS_DIR", tmp_path / "nothing")
    empty = run_section(Section("zoo", tour), tmp_path / "report2", quick=True)
    assert empty.status == "ok" and not [b for b in empty.blocks if type(b).__name__ == "_Picture"]


def test_the_zoo_tour_section_is_registered():
    import diffcore

    sections = {c.name: c for c in diffcore.available("tour")}
    assert "zoo" in sections and sections["zoo"].plugin == "zoo"
