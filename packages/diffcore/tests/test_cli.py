"""The `diffcore` command line and the tour report."""

from __future__ import annotations

import errno
import importlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

import diffcore
from diffcore.cli import cli
from diffcore.hookspecs import hookimpl
from diffcore.plugin_host import PluginHost, reset
from diffcore.samplers import SAMPLERS
from diffcore.tour import Section, run_tour

plugins_module = importlib.import_module("diffcore.plugin_host")
tour_module = importlib.import_module("diffcore.tour")

TWO_MODES = "gmm:means=[[-4.0,0.0],[4.0,0.0]]"


@pytest.fixture(autouse=True)
def builtin_plugin_only(monkeypatch):
    """Only the built-in plugin, so that other installed plugins cannot change what we see."""
    monkeypatch.setenv("DIFFCORE_PLUGINS", "")
    monkeypatch.delenv("DIFFCORE_DEBUG", raising=False)
    reset()
    yield
    reset()


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_error_line(result) -> str:
    """The result's stderr is exactly one line `error: ...`, with no traceback anywhere."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


# -- plugins and available -----------------------------------------------------------------------
def test_plugins_json_lists_the_builtin_plugin_with_its_priors():
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    infos = {p["name"]: p for p in json.loads(result.stdout)}
    builtin = infos["diffcore"]
    assert builtin["error"] is None
    assert builtin["version"] == diffcore.__version__
    assert {"gmm", "gaussian", "diffusers", "stable-diffusion"} <= set(builtin["registered"]["prior"])
    assert builtin["registered"]["tour"] == ["diffcore", "jobs"]


def test_plugins_table_names_plugin_and_priors():
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    assert "diffcore" in result.stdout and "gmm" in result.stdout and "ok" in result.stdout


def test_available_prior_shows_gmm_with_summary_and_plugin():
    table = invoke("available", "prior")
    assert table.exit_code == 0, table.output
    assert "gmm" in table.stdout and "gaussian-mixture" in table.stdout
    listed = {c["name"]: c for c in json.loads(invoke("available", "priors", "--json").stdout)}
    assert listed["gmm"]["plugin"] == "diffcore"
    assert listed["gmm"]["aliases"] == ["gaussian-mixture"]
    assert "Gaussian mixture" in listed["gmm"]["summary"]
    assert "means" in listed["gmm"]["options"]


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "known", "closest"),
    [
        (["available", "priorz"], "operator", "'prior'"),
        (["sample", "--prior", "gmn", "--out", "x.npy"], "gaussian, gmm", "'gmm'"),
        (["sample", "--prior", TWO_MODES, "--sampler", "eulr", "--out", "x.npy"], "ddpm, ddim, euler, heun, dpm++2m", "'euler'"),
        (["tour", "--only", "difcore", "--out", "report"], "diffcore", "'diffcore'"),
        (["tuor"], "", "'tour'"),
    ],
)
def test_unknown_names_exit_2_with_one_line_naming_known_ones_and_the_closest(args, known, closest, tmp_path):
    with CliRunner().isolated_filesystem(temp_dir=tmp_path):
        line = one_error_line(invoke(*args))
        assert known in line
        assert f"Did you mean {closest}" in line or f"did you mean {closest}" in line
        assert os.listdir(".") == []  # nothing written


def test_usage_errors_are_one_line_too():
    line = one_error_line(invoke("sample", "--out", "x.npy"))
    assert "--prior" in line


def test_debug_shows_the_traceback():
    result = invoke("--debug", "sample", "--prior", "gmn", "--out", "x.npy")
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "UnknownComponentError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown prior 'gmn'")


def test_the_console_script_is_installed_and_reports_errors_in_one_line(tmp_path):
    exe = shutil.which("diffcore", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("the diffcore console script is not installed next to this Python")
    env = {**os.environ, "DIFFCORE_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [exe, "sample", "--prior", "gmn", "--out", "x.npy"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: unknown prior 'gmn'; known priors: diffusers, diffusers-video, finetuned, gaussian, gmm, stable-diffusion, zero123. Did "
        "you mean 'gmm'?"
    ]
    assert proc.stdout == ""
    assert not (tmp_path / "x.npy").exists()


# -- sample --------------------------------------------------------------------------------------
def test_sample_npy_has_the_right_shape_and_the_same_bytes_for_the_same_seed(tmp_path):
    out = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        path = tmp_path / f"{name}.npy"
        result = invoke("sample", "--prior", TWO_MODES, "--n", "64", "--steps", "10", "--seed", str(seed), "--out", str(path))
        assert result.exit_code == 0, result.output
        out[name] = path.read_bytes()
    assert out["a"] == out["b"]
    assert out["a"] != out["c"]
    x = np.load(tmp_path / "a.npy")
    assert x.shape == (64, 2) and x.dtype == np.float32
    assert 2.5 < np.abs(x[:, 0]).mean() < 5.5  # the two modes at x = -4 and x = 4
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npy", "c.npy"]  # no temporary files left


def test_sample_safetensors_and_png(tmp_path):
    from safetensors import safe_open

    st = tmp_path / "x.safetensors"
    assert invoke("sample", "--prior", TWO_MODES, "--n", "8", "--steps", "5", "--sampler", "ddim:eta=1.0", "--out", str(st)).exit_code == 0
    with safe_open(str(st), "pt") as f:
        assert tuple(f.get_tensor("samples").shape) == (8, 2)
        assert json.loads(f.metadata()["diffcore"])["sampler"] == "ddim:eta=1.0"
    scatter, grid = tmp_path / "points.png", tmp_path / "grid.png"
    assert invoke("sample", "--prior", TWO_MODES, "--n", "200", "--steps", "5", "--out", str(scatter)).exit_code == 0
    images = "gmm:means=[[-1.0,-1.0,-1.0,-1.0],[1.0,1.0,1.0,1.0]],shape=(1,2,2)"
    assert invoke("sample", "--prior", images, "--n", "9", "--steps", "5", "--out", str(grid)).exit_code == 0
    for png in (scatter, grid):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_refuses_what_it_cannot_write_before_sampling(tmp_path):
    assert ".npy" in one_error_line(invoke("sample", "--prior", TWO_MODES, "--out", str(tmp_path / "x.txt")))
    assert "does not exist" in one_error_line(invoke("sample", "--prior", TWO_MODES, "--out", str(tmp_path / "missing" / "x.npy")))
    assert "shape (5,)" in one_error_line(
        invoke("sample", "--prior", "gaussian:mean=[0.0,0.0,0.0,0.0,0.0]", "--out", str(tmp_path / "x.png"))
    )
    assert "takes: eta" in one_error_line(
        invoke("sample", "--prior", TWO_MODES, "--sampler", "ddim:etta=1", "--out", str(tmp_path / "x.npy"))
    )
    assert "accept labels" in one_error_line(invoke("sample", "--prior", TWO_MODES, "--label", "3", "--out", str(tmp_path / "x.npy")))
    assert os.listdir(tmp_path) == []


def test_a_failing_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tour_module.os, "fsync", disk_full)
    old = tmp_path / "old.npy"
    old.write_bytes(b"previous result")
    for target in (old, tmp_path / "new.npy"):
        line = one_error_line(invoke("sample", "--prior", TWO_MODES, "--n", "64", "--steps", "5", "--out", str(target)))
        assert "No space left on device" in line
    assert old.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["old.npy"]  # neither the new file nor any temporary file


# -- plugin commands -----------------------------------------------------------------------------
class FakeEntryPoint:
    def __init__(self, name, obj):
        self.name, self.value, self.dist, self._obj = name, f"tests:{name}", None, obj

    def load(self):
        return self._obj


class HelloPlugin:
    @hookimpl
    def register_commands(self, cli):
        @click.command("hello")
        def hello():
            """Say hello."""
            click.echo("hello from a plugin")

        cli.add_command(hello)


class BrokenCommandsPlugin:
    @hookimpl
    def register_commands(self, cli):
        raise RuntimeError("this plugin is broken")


class GreedyPlugin:
    @hookimpl
    def register_commands(self, cli):
        cli.add_command(click.Command("tour", callback=lambda: click.echo("hijacked")))


def test_plugins_add_commands_and_a_broken_one_breaks_nothing(monkeypatch):
    eps = [
        FakeEntryPoint("hello", HelloPlugin()),
        FakeEntryPoint("broken", BrokenCommandsPlugin()),
        FakeEntryPoint("greedy", GreedyPlugin()),
    ]
    monkeypatch.setattr(plugins_module, "_host", PluginHost(entry_points=eps))
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    # the CLI reloads plugin commands when the host changes; restore its bookkeeping afterwards
    monkeypatch.setattr(cli, "_loaded_for", cli._loaded_for)
    monkeypatch.setattr(cli, "_plugin_commands", cli._plugin_commands)

    hello = invoke("hello")
    assert hello.exit_code == 0 and hello.stdout.strip() == "hello from a plugin"
    assert "hello" in invoke("--help").stdout
    tour_help = invoke("tour", "--help")
    assert "Run every installed plugin's showcase" in tour_help.stdout  # the built-in command was kept
    infos = {p["name"]: p for p in json.loads(invoke("plugins", "--json").stdout)}
    assert "register_commands" in infos["broken"]["error"] and "this plugin is broken" in infos["broken"]["error"]
    assert infos["hello"]["error"] is None
    assert invoke("available", "prior").exit_code == 0


# -- tour ----------------------------------------------------------------------------------------
def test_tour_quick_writes_a_report_with_every_sampler_and_its_pictures(tmp_path):
    out = tmp_path / "report"
    result = invoke("tour", "--out", str(out), "--only", "diffcore", "--quick")
    assert result.exit_code == 0, result.output
    index = out / "index.html"
    assert str(index) in result.stdout
    page = index.read_text(encoding="utf-8")
    for name in SAMPLERS:
        assert name in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) >= 3
    for src in sources:
        assert not src.startswith("/") and (out / src).is_file()
        assert (out / src).read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "report.json").read_text())
    (section,) = report["sections"]
    assert section["name"] == "diffcore" and section["status"] == "ok"
    assert section["metrics"]["SW floor (exact vs exact)"]["value"] > 0
    assert diffcore.__version__ in page and "1 sections" in page
    assert not [p for p in out.rglob("*.tmp")]


def picture_section(tour):
    import torch

    tour.text("All **fine** here.")
    tour.image("ramp", torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8), caption="a ramp")
    tour.table("numbers", [{"a": 1, "b": 0.5}, {"a": 2, "c": "x"}], caption="numbers")
    tour.metric("answer", 42, unit="units")


def failing_section(tour):
    tour.text("Started, then:")
    raise ZeroDivisionError("the section blew up")


def needs_extra(tour):
    raise ImportError('this section needs pip install "diffcore[tour]"')


def test_a_failing_section_shows_its_error_and_the_others_still_render(tmp_path):
    sections = [Section("boom", failing_section, "explodes"), Section("fine", picture_section, "pictures"), Section("extra", needs_extra)]
    console = Console(file=io.StringIO(), width=200)
    index = run_tour(tmp_path, sections=sections, console=console)
    page = index.read_text(encoding="utf-8")
    assert 'pip install "diffcore[tour]"' in console.file.getvalue()  # the extra is not eaten as rich markup
    assert "ZeroDivisionError: the section blew up" in page and "Started, then:" in page
    assert "<strong>fine</strong>" in page and "a ramp" in page and "42" in page
    assert (tmp_path / "fine" / "ramp.png").is_file() and (tmp_path / "fine" / "numbers.csv").read_text().startswith("a,b,c\n")
    assert "pip install &quot;diffcore[tour]&quot;" in page
    statuses = {s["name"]: s["status"] for s in json.loads((tmp_path / "report.json").read_text())["sections"]}
    assert statuses == {"boom": "failed", "fine": "ok", "extra": "skipped"}
    assert page.index('id="boom"') < page.index('id="fine"') < page.index('id="extra"')


def test_tour_cli_exits_1_when_a_section_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(tour_module, "registered_sections", lambda: [Section("boom", failing_section), Section("fine", picture_section)])
    result = invoke("tour", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "boom" in result.stderr and (tmp_path / "index.html").is_file()
    assert Path(tmp_path / "fine" / "ramp.png").is_file()


def test_sample_names_the_labels_and_takes_device_dtype_and_start(tmp_path, monkeypatch):
    pytest.importorskip("diff_zoo")
    monkeypatch.setenv("DIFFCORE_PLUGINS", "zoo")
    reset()
    bad = invoke("sample", "--prior", "zoo:digits", "--label", "12", "--out", str(tmp_path / "x.npy"))
    assert (
        bad.exit_code == 2
        and "--label 12 is not a class of this prior; its labels are 0, 1, 2" in bad.output
        and "10 is the null label" in bad.output
    )
    assert not (tmp_path / "x.npy").exists()
    unconditional = invoke("sample", "--prior", TWO_MODES, "--label", "1", "--out", str(tmp_path / "y.npy"))
    assert unconditional.exit_code == 2 and "does not accept labels" in unconditional.output
    ok = invoke(
        "sample",
        "--prior",
        "zoo:digits",
        "--label",
        "3",
        "--n",
        "2",
        "--steps",
        "3",
        "--dtype",
        "bfloat16",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "d.npy"),
    )
    assert ok.exit_code == 0, ok.output
    paths = {}
    for start in ("prior", "normal"):
        paths[start] = tmp_path / f"{start}.npy"
        assert (
            invoke("sample", "--prior", TWO_MODES, "--n", "8", "--steps", "5", "--start", start, "--out", str(paths[start])).exit_code == 0
        )
    assert paths["prior"].read_bytes() != paths["normal"].read_bytes()
    wrong = invoke("sample", "--prior", TWO_MODES, "--dtype", "float16", "--out", str(tmp_path / "z.npy"))
    assert wrong.exit_code == 2 and "does not take a dtype" in wrong.output
