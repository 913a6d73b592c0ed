"""zoo:shapes: the recipe trains on the kernel loop (seeded), saves float16 weights that load back, the commands write whole runs."""

import json

import pytest
import torch
from click.testing import CliRunner

import diffcore
from diff_3d.points import zoo
from diff_3d.points.io import ply_bytes, read_points
from diff_3d.points.recipe import RECIPE, ShapesRecipe
from diff_3d.points.shapes import shape
from diff_3d.points.train import train
from diffcore.cli import cli
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond

TINY = ShapesRecipe(
    **{**RECIPE.as_dict(), "width": 16, "blocks": 1, "resolution": 4, "voxel_width": 8, "points": 64, "batch": 4, "warmup": 1}
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo") / "shapes"
    summary = train(out, recipe=TINY, seed=3, steps=4, progress=False)
    return out, summary


def test_training_is_seeded_and_saves_float16_weights_that_load(trained, tmp_path):
    out, summary = trained
    assert summary["steps"] == 4 and len(summary["loss_curve"]) == 1 and json.loads((out / "recipe.json").read_text())["seed"] == 3
    again = train(tmp_path / "again", recipe=TINY, seed=3, steps=4, progress=False)
    assert again["final_loss"] == summary["final_loss"]
    a, b = zoo.load(out), zoo.load(tmp_path / "again")
    assert all(torch.equal(p, q) for p, q in zip(a.network.state_dict().values(), b.network.state_dict().values(), strict=True))
    from safetensors.torch import load_file

    stored = load_file(str(out / "network.safetensors"))
    assert {t.dtype for t in stored.values()} == {torch.float16}
    prior = diffcore.create("prior", "zoo:shapes", path=str(out), points=80)
    assert prior.sample_shape == (80, 3) and prior.class_names == RECIPE.classes and prior.name == "zoo:shapes"
    x = torch.randn(2, 80, 3, generator=torch.Generator().manual_seed(0))
    expected = a.network(x, torch.tensor([10.0, 10.0]), torch.tensor([1, 1]))
    assert torch.allclose(prior.network_output(x, 11 / 1000, Cond(labels=torch.tensor([1]))), expected, atol=1e-6)


def test_training_refuses_a_folder_it_did_not_write_and_loading_names_what_is_missing(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DiffcoreError, match="not an empty folder or an earlier training output"):
        train(tmp_path / "other", recipe=TINY, steps=1, progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    with pytest.raises(DiffcoreError, match="train them with"):
        zoo.load(tmp_path / "other")


def run(*args):
    return CliRunner().invoke(cli, ["3d", "points", *args])


def test_generate_and_complete_write_clouds_and_a_turntable(trained, tmp_path):
    out, _ = trained
    spec = f"zoo:shapes:path={out}"
    res = run(
        "generate",
        "--prior",
        spec,
        "--label",
        "torus",
        "--n",
        "2",
        "--steps",
        "3",
        "--frames",
        "2",
        "--size",
        "16",
        "--out",
        str(tmp_path / "g"),
    )
    assert res.exit_code == 0, res.output
    clouds = [read_points(tmp_path / "g" / f"cloud-{i}.ply") for i in range(2)]
    assert all(c.shape == (64, 3) for c in clouds) and (tmp_path / "g" / "turntable.gif").read_bytes()[:6] == b"GIF89a"
    assert json.loads((tmp_path / "g" / "run.json").read_text())["label"] == "torus"
    partial = shape("box", 40, torch.Generator().manual_seed(0))[:30]
    (tmp_path / "part.ply").write_bytes(ply_bytes(partial))
    res = run(
        "complete", "--prior", spec, "--partial", str(tmp_path / "part.ply"), "--steps", "3", "--frames", "2", "--out", str(tmp_path / "c")
    )
    assert res.exit_code == 0, res.output
    completed = read_points(tmp_path / "c" / "cloud-0.ply")
    assert completed.shape == (64, 3) and torch.equal(completed[:30], partial)


@pytest.mark.parametrize(
    ("content", "message"),
    [("0 0 0\n1 1 1\n", "the partial cloud has 2 points; completion needs at least 16"), ("0 nan 0\n" * 20, "20 point(s) with non-finite")],
)
def test_complete_refuses_bad_partial_clouds_on_one_line_and_writes_nothing(trained, tmp_path, content, message):
    out, _ = trained
    (tmp_path / "bad.xyz").write_text(content)
    res = run("complete", "--prior", f"zoo:shapes:path={out}", "--partial", str(tmp_path / "bad.xyz"), "--out", str(tmp_path / "c"))
    assert res.exit_code != 0 and message in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


@pytest.mark.skipif(not zoo.is_trained(zoo.weights_folder()), reason="the zoo:shapes weights are not shipped in this checkout")
def test_the_shipped_prior_is_small_and_draws_its_classes():
    folder = zoo.weights_folder()
    assert (folder / "network.safetensors").stat().st_size < 2_000_000 and (folder / "README.md").is_file()
    prior = diffcore.create("prior", "zoo:shapes", points=256)
    gen = torch.Generator().manual_seed(0)
    spheres = diffcore.sample(prior, 2, steps=25, sampler="ddim", cond=Cond(labels=torch.tensor([0])), generator=gen)
    radius = (spheres - spheres.mean(dim=1, keepdim=True)).norm(dim=2)
    # a sphere's points share one distance from its centre; a box's, half-extents 0.3-0.7, spread far more
    boxes = diffcore.sample(prior, 2, steps=25, sampler="ddim", cond=Cond(labels=torch.tensor([1])), generator=gen)
    box_radius = (boxes - boxes.mean(dim=1, keepdim=True)).norm(dim=2)
    assert float((radius.std(dim=1) / radius.mean(dim=1)).max()) < float((box_radius.std(dim=1) / box_radius.mean(dim=1)).min())


def test_the_tour_section_runs_on_a_trained_prior(trained, tmp_path, monkeypatch):
    import shutil

    from diffcore.tour import run_tour

    shutil.copytree(trained[0], tmp_path / "weights" / "shapes")
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "weights")
    run_tour(tmp_path / "tour", only=["3d-points"], quick=True)
    (section,) = json.loads((tmp_path / "tour" / "report.json").read_text())["sections"]
    assert section["status"] == "ok", section["error"]
    values = {name: value["value"] for name, value in section["metrics"].items()}
    assert 0 <= values["generated clouds nearest a held-out shape of their class"] <= 1
    assert values["Chamfer distance to the whole shape, the half alone"] > 0
    assert sorted(p.name for p in (tmp_path / "tour" / "3d-points").glob("*.gif")) == ["completion.gif", "shapes.gif"]


def test_the_measurements_and_the_card(trained):
    from diff_3d.points.card import render_card
    from diff_3d.points.evaluate import cut, evaluate

    out, summary = trained
    result = evaluate(zoo.load(out), per_class=1, steps=2)
    gen, comp = result["generation"], result["completion"]
    assert gen["clouds"].shape == (5, 64, 3) and len(comp["examples"]) == 5
    assert set(gen["generated"]) == {"mmd-cd", "cov-cd", "1-nna-cd", "mmd-emd", "cov-emd", "1-nna-emd", "class match"}
    assert 0 < gen["held-out (floor)"]["mmd-cd"] and comp["half alone"]["cd"] > 0
    card = render_card(summary, {"protocol": result["protocol"], "generation": gen, "completion": comp})
    assert f"| held-out (floor) | {gen['held-out (floor)']['mmd-cd']:g} |" in card and f"final loss {summary['final_loss']}" in card
    cloud = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    half = cut(cloud, torch.Generator().manual_seed(1))
    assert 0 < len(half) < 100 and all(any(torch.equal(p, q) for q in cloud) for p in half[:5])


@pytest.mark.skipif(not zoo.is_trained(zoo.weights_folder()), reason="the zoo:shapes weights are not shipped in this checkout")
def test_the_shipped_card_is_what_its_record_and_measurements_render():
    from diff_3d.points.card import render_card

    folder = zoo.weights_folder()
    record, measured = (json.loads((folder / name).read_text()) for name in ("recipe.json", "metrics.json"))
    assert (folder / "README.md").read_text() == render_card(record, measured)
    assert record["recipe"] == RECIPE.as_dict() | {"classes": list(RECIPE.classes)}  # the card describes RECIPE: they must agree
