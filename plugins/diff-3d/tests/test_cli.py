"""``diffcore 3d distill`` and ``diffcore 3d export``: a run written whole, exported, and bad input refused on one line."""

import json

import pytest
from click.testing import CliRunner

from diffcore.cli import cli


def run(*args):
    return CliRunner().invoke(cli, ["3d", *args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "blobs"
    res = run(
        "distill",
        "--prior",
        "analytic-scene:size=16",
        "--size",
        "16",
        "--steps",
        "100",
        "--representation",
        "voxel:resolution=16,samples=32",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    return out


def test_distill_writes_a_run_that_exports(trained):
    meta = json.loads((trained / "run.json").read_text())
    assert (
        meta["representation"] == "voxel:resolution=16,samples=32"
        and meta["prior"] == "analytic-scene:size=16"
        and len(meta["losses"]) == 100
    )
    assert (trained / "representation.safetensors").is_file() and (trained / "turntable.gif").is_file()
    res = run("export", "--config", str(trained), "--resolution", "24", "--threshold", "0.5", "--frames", "4", "--size", "16")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (
        report["threshold"] == 0.5
        and report["faces"] > 0
        and sorted(p.rsplit("/", 1)[1] for p in report["files"])
        == [
            "mesh.glb",
            "mesh.obj",
            "mesh.ply",
            "points.ply",
            "turntable.gif",
        ]
    )


def test_a_2d_run_writes_an_image(tmp_path):
    res = run(
        "distill",
        "--prior",
        "zoo:digits",
        "--label",
        "4",
        "--distiller",
        "sds:guidance_scale=3",
        "--representation",
        "image:size=16,channels=1",
        "--steps",
        "5",
        "--out",
        str(tmp_path / "four"),
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "four" / "image.png").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["distill", "--prior", "zoo:patches", "--label", "3"],
            "does not accept labels conditioning; it accepts: nothing (unconditional); drop the label",
        ),
        (["distill", "--prior", "zoo:digits", "--prompt", "a cat"], "does not accept text conditioning; it accepts: labels"),
        (["distill", "--prior", "zoo:digits", "--label", "12"], "label 12 is out of range: the prior has 10 labels"),
        (["distill", "--prior", "zoo:digits", "--distiller", "sds:weighting=dreamtime"], "unknown weighting 'dreamtime'"),
        (["distill", "--prior", "analytic-scene", "--distiller", "vsd:second=lora"], "second='lora' needs a prior with a network"),
    ],
)
def test_bad_distillations_fail_on_one_line(tmp_path, args, message):
    res = run(*args, "--steps", "2", "--size", "8", "--out", str(tmp_path / "run"))
    assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_bad_exports_fail_on_one_line(trained, tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"representation": "voxel:resolution=16,samples=32"}))
    cases = [
        (["--config", str(tmp_path)], "has no representation.safetensors: the checkpoint is missing"),
        (["--config", str(tmp_path / "nowhere")], "no run.json at"),
        (["--config", str(tmp_path / "outputs" / "config.yml")], "no nerfstudio config at"),
        (
            ["--config", str(trained), "--threshold", "1e6", "--resolution", "8"],
            "empty mesh: the density never crosses the threshold 1e+06",
        ),
        (["--config", str(trained), "--formats", "stl"], "unknown mesh format 'stl'"),
    ]
    for args, message in cases:
        res = run("export", *args)
        assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
