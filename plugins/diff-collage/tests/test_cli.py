"""``diffcore collage``: the image and metrics.json, written whole; bad input is one line and writes nothing."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from diffcore.cli import cli


def _zoo_textures_ready() -> bool:
    try:
        from diff_zoo.priors import is_trained, weights_folder
    except ImportError:
        return False
    return is_trained(weights_folder("textures"))


pytestmark = pytest.mark.skipif(not _zoo_textures_ready(), reason="needs diff-zoo with the shipped zoo:textures weights")


def _collage(args, out):
    return CliRunner().invoke(cli, ["collage", "--prior", "zoo:textures", "--steps", "3", *args, "--out", str(out)])


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # width, height


def test_a_chain_writes_the_image_and_its_metrics(tmp_path):
    res = _collage(["--graph", "chain", "--windows", "3", "--overlap", "16", "--label", "grass", "--n", "2"], tmp_path / "strip")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "strip").iterdir()) == ["collage.png", "metrics.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["strip"]  # no temporary folder left behind
    m = json.loads((tmp_path / "strip" / "metrics.json").read_text())
    assert m["method"] == "diffcollage" and m["separator"] == "crop" and m["graph"]["kind"] == "chain"
    assert m["canvas_shape"] == [1, 32, 64] and m["image_shape"] == [1, 32, 64] and m["windows"] == 3
    assert m["network_calls"] == 6 and m["network_calls_per_step"] == 2  # windows, then overlaps: one batch each
    assert m["seam_score"] > 0 and m["seconds"]["sample"] > 0 and m["conditions"]["label"] == "grass"
    assert _png_size(tmp_path / "strip" / "collage.png")[0] == 64 + 4  # two strips stacked, 2 px padding
    # the same seed again gives the same file
    again = _collage(["--graph", "chain", "--windows", "3", "--overlap", "16", "--label", "grass", "--n", "2"], tmp_path / "again")
    assert again.exit_code == 0 and (tmp_path / "again" / "collage.png").read_bytes() == (tmp_path / "strip" / "collage.png").read_bytes()


def test_cycle_grid_and_a_graph_file(tmp_path):
    res = _collage(["--graph", "cycle", "--windows", "3", "--method", "multidiffusion", "--labels", "brick*2,gravel"], tmp_path / "loop")
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "loop" / "metrics.json").read_text())
    assert m["canvas_shape"] == [1, 32, 48] and m["graph"]["wrap"] == [True] and m["network_calls_per_step"] == 1
    res = _collage(["--graph", "grid", "--rows", "2", "--cols", "2", "--overlap", "8", "--method", "mixture"], tmp_path / "grid")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "grid" / "metrics.json").read_text())["canvas_shape"] == [1, 56, 56]
    graph = tmp_path / "tree.json"
    graph.write_text(json.dumps({"canvas": [32, 56], "window": [32, 32], "windows": [[0, 0], [0, 24]], "edges": [[0, 1]]}))
    res = _collage(["--graph", str(graph), "--label", "0"], tmp_path / "tree")
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "tree" / "metrics.json").read_text())
    assert m["graph"]["kind"] == "tree" and m["canvas_shape"] == [1, 32, 56]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--windows", "3", "--overlap", "32"], "overlap 32 must be at least 0 and smaller than the window (32)"),
        (["--graph", "{tmp}/loop.json"], "closes a cycle"),
        (["--graph", "{tmp}/small.json"], "a window this prior cannot take"),
        (["--windows", "3", "--labels", "brick,grass"], "2 per-window conditions for a graph of 3 windows"),
        (["--windows", "3", "--label", "sand"], "unknown label 'sand'; this prior's classes: brick, grass, gravel"),
        (["--graph", "spiral"], "unknown graph 'spiral'"),
        (["--sampler", "dddim"], "unknown sampler 'dddim'"),
        (["--windows", "2", "--prompt", "a wall"], "does not accept text"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, says):
    (tmp_path / "loop.json").write_text(
        json.dumps({"canvas": [32, 56], "window": [32, 32], "windows": [[0, 0], [0, 12], [0, 24]], "edges": [[0, 1], [1, 2], [2, 0]]})
    )
    (tmp_path / "small.json").write_text(json.dumps({"canvas": [16, 28], "window": [16, 16], "windows": [[0, 0], [0, 12]]}))
    before = set(tmp_path.iterdir())
    res = _collage([a.replace("{tmp}", str(tmp_path)) for a in args], tmp_path / "out")
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], res.stderr
    assert set(tmp_path.iterdir()) == before


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    res = _collage(["--windows", "2"], tmp_path / "file")
    assert res.exit_code == 2 and "is a file" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_an_earlier_output_is_replaced_whole_and_another_folder_refused(tmp_path):
    out = tmp_path / "strip"
    assert _collage(["--windows", "2", "--overlap", "16"], out).exit_code == 0
    (out / "stale.txt").write_text("from an earlier run")
    res = _collage(["--windows", "3", "--overlap", "16", "--method", "multidiffusion"], out)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["collage.png", "metrics.json"]  # the stale file went with the old output
    assert json.loads((out / "metrics.json").read_text())["method"] == "multidiffusion"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strip"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    res = _collage(["--windows", "2"], other)
    assert res.exit_code == 2 and "not an earlier output" in res.stderr
    assert [p.name for p in other.iterdir()] == ["todo.txt"]


def test_a_job_draws_one_canvas_per_seed(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(
        'task = "collage"\nout = "strips"\nseed = 3\n[items]\nseeds = 2\n'
        '[options]\nprior = "zoo:textures"\ngraph = "chain"\nwindows = 2\noverlap = 16\nsteps = 2\nlabel = "brick"\n'
    )
    res = CliRunner().invoke(cli, ["collage", "--job", str(job)])
    assert res.exit_code == 0, res.output
    folder = tmp_path / "strips"
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert names == ["seed-000003.json", "seed-000003.png", "seed-000004.json", "seed-000004.png"]
    record = json.loads((folder / "seed-000004.json").read_text())
    assert record["seed"] == 4 and record["network_calls"] == 4 and record["canvas_shape"] == [1, 32, 48] and "seconds" not in record
    # an item is the single command's canvas for its seed
    single = _collage(["--windows", "2", "--overlap", "16", "--steps", "2", "--label", "brick", "--seed", "4"], tmp_path / "one")
    assert single.exit_code == 0, single.output
    assert (tmp_path / "one" / "collage.png").read_bytes() == (folder / "seed-000004.png").read_bytes()
    # run again: every item is finished, nothing is redone
    again = CliRunner().invoke(cli, ["collage", "--job", str(job)])
    assert again.exit_code == 0 and "2 skipped" in again.output, again.output
