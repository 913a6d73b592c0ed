"""``diffcore video``: files and metrics, the input kept, --job, and one-line errors with no partial output."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from diff_video.io import read_video, write_video
from diffcore.cli import cli
from diffcore.testing import save_tiny_unet_pipeline


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """A tiny untrained video prior: a random 8x8 one-channel UNet inflated, 4 frames."""
    folder = save_tiny_unet_pipeline(tmp_path_factory.mktemp("tiny") / "unet", channels=1, seed=3)
    return f"inflated:base='diffusers:path={folder}',frames=4"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("input")
    video = torch.linspace(-1, 1, 6).reshape(6, 1, 1, 1).expand(6, 1, 8, 8)
    return {
        "small": write_video(root / "small.gif", video[:, :, ::2, ::2], fps=4),
        "full": write_video(root / "full.gif", video, fps=4),
        "video": video,
    }


def _run(*args):
    return CliRunner().invoke(cli, ["video", *map(str, args)])


def test_generate_writes_videos_and_metrics(spec, tmp_path):
    out = tmp_path / "gen"
    result = _run("generate", "--prior", spec, "--n", 2, "--steps", 3, "--out", out, "--scale", 1)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "video-000.gif", "video-000.mp4", "video-001.gif", "video-001.mp4"]
    record = json.loads((out / "metrics.json").read_text())
    assert record["format"] == "diff-video-run" and record["metrics"]["frames"] == 4 and record["settings"]["steps"] == 3
    assert read_video(out / "video-001.gif").frames.shape == (4, 3, 8, 8)
    again = tmp_path / "again"
    _run("generate", "--prior", spec, "--n", 2, "--steps", 3, "--out", again, "--scale", 1, "--format", "gif")
    assert (again / "video-001.gif").read_bytes() == (out / "video-001.gif").read_bytes()  # same seed, same bytes


def test_extend_keeps_the_input(spec, clip, tmp_path):
    out = tmp_path / "ext"
    result = _run("extend", "--prior", spec, "--video", clip["full"], "--new", 3, "--context", 2, "--steps", 3, "--out", out, "--scale", 1)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["input_kept_exactly"] and metrics["frames"] == 9 and metrics["input_frames"] == 6
    frames = read_video(out / "video-000.gif").frames
    assert frames.shape[0] == 9 and torch.equal(
        frames[:6, :1], clip["video"].clamp(-1, 1).mul(127.5).add(127.5).round().div(127.5).sub(1)[:, :1]
    )


def test_interpolate_and_upscale(spec, clip, tmp_path):
    result = _run(
        "interpolate", "--prior", spec, "--video", clip["full"], "--count", 4, "--steps", 2, "--out", tmp_path / "int", "--format", "gif"
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "int" / "metrics.json").read_text())["metrics"]
    assert metrics["frames"] == 7 and metrics["input_rmse"] < 1e-6  # measured frames are kept exactly
    result = _run(
        "upscale",
        "--prior",
        spec,
        "--video",
        clip["small"],
        "--steps",
        2,
        "--out",
        tmp_path / "up",
        "--format",
        "gif",
        "--method",
        "replacement",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "up" / "metrics.json").read_text())["metrics"]
    assert metrics["shape"] == [1, 8, 8] and metrics["frames"] == 6 and metrics["downsampled_rmse"] < 1e-5


def test_bad_input_is_one_line_and_writes_nothing(spec, clip, tmp_path):
    out = tmp_path / "nothing"
    cases = [
        (["generate", "--prior", "gaussian:mean=[0.0, 1.0]"], "needs a video prior"),
        (["generate", "--prior", spec, "--frames", 65], "cannot make 65 frames with this prior"),
        (["extend", "--prior", spec, "--video", clip["small"]], "has frames of 4x4 but this extend takes 8x8; pass --resize"),
        (["extend", "--prior", spec, "--video", tmp_path / "missing.mp4"], "does not exist"),
        (["interpolate", "--prior", spec, "--video", clip["full"], "--factor", 4], "--factor must be between 2 and 3"),
        (["generate", "--prior", spec, "--label", 3], "--label needs a class-conditional prior"),
        (["generate", "--prior", spec, "--format", "avi"], "--format takes gif and/or mp4"),
    ]
    for args, message in cases:
        result = _run(*args, "--out", out, "--steps", 2)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists()
    result = _run(
        "extend",
        "--prior",
        spec,
        "--video",
        clip["small"],
        "--resize",
        "--new",
        2,
        "--context",
        2,
        "--steps",
        2,
        "--out",
        out,
        "--format",
        "gif",
    )
    assert result.exit_code == 0, result.output


def test_job_over_seeds(spec, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(
        f'task = "video generate"\nout = "frames"\nseed = 5\n[items]\nseeds = 2\n[options]\nprior = "{spec}"\nn = 2\nsteps = 2\nformat = '
        '"gif"\nscale = 1\n'
    )
    result = CliRunner().invoke(cli, ["video", "generate", "--job", str(job)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "frames").iterdir() if not p.name.startswith("."))
    assert names == ["seed-000005.gif", "seed-000005.json", "seed-000006.gif", "seed-000006.json"]
    tiled = read_video(tmp_path / "frames" / "seed-000005.gif").frames
    assert tiled.shape == (4, 3, 10, 19)  # two 8x8 videos side by side with 1-pixel borders
