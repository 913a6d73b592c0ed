"""The plugin: the four zoo priors are registered, missing weights give a clear error, the CLI works."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import diffcore
from diff_zoo import priors
from diff_zoo.cli import zoo
from diffcore.errors import DiffcoreError

ZOO = ["zoo:digits", "zoo:patches", "zoo:phantoms", "zoo:textures"]


def _reset_host():
    for module in ("diffcore.plugin_host", "diffcore.plugins"):  # the kernel's module name
        try:
            importlib.import_module(module).reset()
            return
        except (ImportError, AttributeError):
            continue


@pytest.fixture
def zoo_plugin(monkeypatch):
    monkeypatch.delenv("DIFFCORE_PLUGINS", raising=False)
    _reset_host()
    yield
    _reset_host()


def test_the_four_zoo_priors_are_registered(zoo_plugin):
    found = {c.name: c for c in diffcore.available("prior") if c.plugin == "zoo"}
    assert sorted(found) == ZOO  # other plugins may add zoo: priors of their own (diff-video's zoo:moving-digits)
    assert all(c.summary for c in found.values())
    assert all({"path", "device", "dtype", "clip_x0"} <= set(c.options()) for c in found.values())


def test_missing_weights_name_the_command_that_trains_them(zoo_plugin, monkeypatch, tmp_path):
    monkeypatch.setattr(priors, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(DiffcoreError, match="diffcore zoo train phantoms --out DIR"):
        diffcore.create("prior", "zoo:phantoms")
    with pytest.raises(DiffcoreError, match="are not in"):
        diffcore.create("prior", "zoo:digits", path=tmp_path / "nothing")


def test_shipped_weights_load_when_present(zoo_plugin, monkeypatch, trained_digits):
    out, _ = trained_digits
    monkeypatch.setattr(priors, "WEIGHTS_DIR", out.parent)
    prior = diffcore.create("prior", "zoo:digits")
    assert prior.sample_shape == (1, 16, 16) and prior.name == "zoo:digits"


def test_zoo_list_and_card(monkeypatch, tmp_path, trained_digits):
    out, _ = trained_digits
    monkeypatch.setattr(priors, "WEIGHTS_DIR", out.parent)
    result = CliRunner().invoke(zoo, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "zoo:digits" in result.output and "not shipped" in result.output  # digits is there, the others are not
    card = CliRunner().invoke(zoo, ["card", "digits"])
    assert card.exit_code == 0 and card.output.startswith("# zoo:digits") and "3 steps" in card.output
    untrained = CliRunner().invoke(zoo, ["card", "phantoms"])
    assert "not trained yet" in untrained.output


def test_zoo_train_command(monkeypatch, tmp_path, tiny_recipe):
    import diff_zoo.recipes

    monkeypatch.setitem(diff_zoo.recipes.RECIPES, "textures", tiny_recipe("textures"))
    result = CliRunner().invoke(
        zoo, ["train", "textures", "--out", str(tmp_path / "t"), "--iterations", "2", "--batch-size", "2", "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "t" / "recipe.json").read_text())
    assert (record["iterations"], record["seed"]) == (2, 5)


def test_diffcore_command_line_has_the_zoo_group():
    """Through the entry point, in a fresh process: `diffcore zoo list` and an unknown name."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DIFFCORE_PLUGINS", None)
    code = "from diffcore.cli import main; main()"
    ok = subprocess.run([sys.executable, "-c", code, "zoo", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "zoo:phantoms" in ok.stdout
    bad = subprocess.run([sys.executable, "-c", code, "zoo", "card", "digts"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "did you mean 'digits'" in bad.stderr.lower()


def test_weights_are_package_data():
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'artifacts = ["src/diff_zoo/weights/**"]' in pyproject
    assert priors.WEIGHTS_DIR.parent == Path(priors.__file__).resolve().parent
