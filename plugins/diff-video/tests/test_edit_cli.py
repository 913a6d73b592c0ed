"""``diffcore video edit``: the edit, the side-by-side comparison and metrics.json; --job over a folder; bad input in one
line with nothing written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from diff_video.editing.synthetic import moving_rotating_digit
from diff_video.io import read_video, write_video
from diffcore.cli import cli


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    (root / "videos").mkdir()
    video, label = moving_rotating_digit(2, 6)
    assert label == 8
    write_video(root / "videos" / "eight.gif", video, fps=4)
    write_video(root / "videos" / "one.gif", moving_rotating_digit(0, 4)[0], fps=4)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    return root


def _run(*args):
    return CliRunner().invoke(cli, ["video", "edit", *map(str, args)])


def test_edit_writes_edit_comparison_and_metrics(clips, tmp_path):
    out = tmp_path / "out"
    fast = ("--steps", 4, "--strength", 0.5, "--refine", 1, "--chunk", 4, "--scale", 1)
    result = _run("--prior", "zoo:digits", "--video", clips / "videos" / "eight.gif", "--target", 3, "--source", 8, "--out", out, *fast)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compare.gif", "compare.mp4", "edit.gif", "edit.mp4", "metrics.json"]
    record = json.loads((out / "metrics.json").read_text())
    assert record["settings"]["editor"] == "pix2video" and record["metrics"]["frames"] == 6
    assert {"warp_error", "frame_difference", "structure_psnr", "fidelity"} <= set(record["metrics"])
    assert read_video(out / "edit.gif").frames.shape == (6, 3, 16, 16)
    assert read_video(out / "compare.gif").frames.shape == (6, 3, 16, 34)  # source | edit, 2 pixels apart


def test_bad_input_is_one_line_and_writes_nothing(clips, tmp_path):
    out = tmp_path / "out"
    eight = clips / "videos" / "eight.gif"
    cases = [
        (["--prior", "zoo:digits", "--video", clips / "corrupt.mp4", "--target", 3], ""),
        (["--prior", "zoo:textures", "--video", eight, "--target", "brick", "--resize"], "needs self-attention layers"),
        (["--prior", "zoo:digits", "--video", eight, "--target", "cat"], "is not a class of this prior"),
        (["--prior", "zoo:digits", "--video", eight, "--target", 3, "--editor", "fatezero", "--weight", 1], "--weight"),
    ]
    for args, message in cases:
        result = _run(*args, "--out", out, "--steps", 2)
        assert result.exit_code != 0, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists()


def test_job_over_a_folder_of_videos(clips, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(
        f'task = "video edit"\nout = "edits"\n[items]\nfolder = "{clips / "videos"}"\n'
        '[options]\nprior = "zoo:digits"\ntarget = "3"\neditor = "per-frame"\nsteps = 2\nstrength = 0.5\nrefine = 0\nformat = '
        '"gif"\nscale = 1\n'
    )
    result = CliRunner().invoke(cli, ["video", "edit", "--job", str(job)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "edits").iterdir() if not p.name.startswith("."))
    assert names == ["eight-compare.gif", "eight.gif", "eight.json", "one-compare.gif", "one.gif", "one.json"]
    assert read_video(tmp_path / "edits" / "one.gif").frames.shape[0] == 4
