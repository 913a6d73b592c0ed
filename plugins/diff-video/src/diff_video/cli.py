"""``diffcore video``: generate, extend, interpolate, upscale and edit videos, train and evaluate zoo:moving-digits.

``edit --prior SPEC --video IN --target T --editor NAME --out DIR`` edits a video with an image
prior (:mod:`diff_video.editing`) and writes the edit, a side-by-side comparison and
``metrics.json`` the same way (:mod:`diff_video.editing.run`).

``generate|extend|interpolate|upscale --prior SPEC --out DIR`` write each video as MP4 and GIF
(``--format``) and ``metrics.json``; every input problem (a prior that is not a video prior, a
frame count it cannot take, a video of another size: pass ``--resize``) is a one-line error
before anything is written, and ``--out`` gets the finished files only (they are made in a
hidden folder next to it and renamed into place). With ``--job JOB.toml`` each command runs over
many items (seeds for ``generate``, video files for the others; docs/scaling.md), one tiled
video and one metrics file per item.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from diffcore.devices import device_options
from diffcore.errors import DiffcoreError
from diffcore.jobs import job_option

MARKER = "metrics.json"


@click.group("video")
def video() -> None:
    """Video priors: generation, extension, interpolation, upscaling; zoo:moving-digits."""


def _check_out(out: Path) -> None:
    if not out.parent.is_dir():
        raise DiffcoreError(f"the folder of --out does not exist: {str(out.parent)!r}")
    if out.exists():
        if not out.is_dir():
            raise DiffcoreError(f"--out {str(out)!r} is a file; give a folder")
        if any(out.iterdir()):
            try:
                ok = json.loads((out / MARKER).read_text()).get("format") == "diff-video-run"
            except (OSError, ValueError, AttributeError):
                ok = False
            if not ok:
                raise DiffcoreError(f"--out {str(out)!r} exists and does not hold an earlier diffcore video result; choose another folder")


def _publish(files: dict[str, bytes], out: Path) -> None:
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        for name, data in files.items():
            (partial / name).write_bytes(data)
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _settings(command: str, options: dict):
    from diff_video.runs import Settings

    fmt = options.pop("format", "gif,mp4")
    outputs = tuple(part for part in str(fmt).replace(" ", "").split(",") if part)
    return Settings(command=command, outputs=outputs, **options)


def _single(command: str, out: Path, seed: int, video_path, options: dict) -> None:
    from diff_video.runs import outputs, prepare

    _check_out(out)
    run = prepare(_settings(command, options))
    video = run.input_video(video_path) if video_path is not None else None
    videos, metrics = run(seed, video)
    if video_path is not None:
        metrics["input"] = Path(video_path).name
    _publish(outputs(run, videos, metrics, each=True), out)
    click.echo(f"{command}: {videos.shape[0]} video(s) of {videos.shape[1]} frames ({metrics['seconds']:.1f} s) -> {out}")


def _task(command: str):
    """The job task of ``command``: ``factory(**options) -> run(item) -> {suffix: bytes}``."""

    def factory(prior, **options):
        from diff_video.runs import outputs, prepare

        run = prepare(_settings(command, {"prior": prior, **options}))

        def run_item(item):
            if command != "generate" and item.path is None:
                raise DiffcoreError(f"video {command} needs video files as items ([items] folder, glob or manifest)")
            video = run.input_video(item.path) if command != "generate" else None
            videos, metrics = run(item.seed, video)
            return outputs(run, videos, metrics, each=False)

        return run_item

    factory.__name__ = f"video_{command}_task"
    factory.__doc__ = f"video {command}: one tiled video (.gif/.mp4) and .json metrics per item"
    return factory


def _common(fn):
    """Options every command shares."""
    for option in reversed(
        [
            click.option(
                "--prior", required=True, metavar="SPEC", help="A video prior, e.g. zoo:moving-digits or per-frame:base=zoo:digits."
            ),
            click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (videos and metrics.json)."),
            click.option("--n", type=int, default=1, show_default=True, help="Videos to make (samples per input)."),
            click.option("--steps", type=int, default=50, show_default=True, help="DDIM steps."),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option("--label", type=int, default=None, help="Class index for class-conditional priors (default: unconditional)."),
            click.option("--guidance", type=float, default=1.0, show_default=True, help="Classifier-free guidance scale towards --label."),
            click.option("--format", "format", default="gif,mp4", show_default=True, help="Files to write: gif, mp4 or both."),
            click.option("--fps", type=float, default=8.0, show_default=True, help="Frame rate of the written files."),
            click.option("--scale", type=int, default=4, show_default=True, help="Integer upscaling of the written files (nearest)."),
            device_options,
        ]
    ):
        fn = option(fn)
    return fn


def _conditional(fn):
    """Options of the commands that take an input video."""
    for option in reversed(
        [
            click.option("--video", "video_path", required=True, type=click.Path(path_type=Path), help="The input video (MP4, GIF, ...)."),
            click.option("--method", type=click.Choice(["guidance", "replacement"]), default="guidance", show_default=True),
            click.option("--weight", type=float, default=5.0, show_default=True, help="Reconstruction guidance weight w_r."),
            click.option("--eta", type=float, default=0.0, show_default=True, help="DDIM eta (0: deterministic steps)."),
            click.option("--resize", is_flag=True, help="Resize the input frames to the size the prior takes."),
            click.option("--start", type=float, default=None, help="Read from this time (s)."),
            click.option("--end", type=float, default=None, help="Read up to this time (s)."),
            click.option("--stride", type=int, default=1, show_default=True, help="Read every k-th frame."),
            click.option("--count", type=int, default=None, help="Read at most this many frames (after --stride)."),
        ]
    ):
        fn = option(fn)
    return fn


@job_option(_task("generate"))
@video.command("generate")
@_common
@click.option("--frames", type=int, default=None, help="Frames per video (default: the prior's).")
def generate_command(prior, out, seed, **options):
    """Draw videos from a video prior."""
    _single("generate", out, seed, None, {"prior": prior, **options})


@job_option(_task("extend"))
@video.command("extend")
@_common
@_conditional
@click.option("--new", type=int, default=8, show_default=True, help="Frames to add after the input.")
@click.option("--context", type=int, default=None, help="Frames each window is conditioned on (default: half the prior's).")
def extend_command(prior, out, seed, video_path, **options):
    """Add frames after a video, autoregressively in windows of the prior's frame count."""
    _single("extend", out, seed, video_path, {"prior": prior, **options})


@job_option(_task("interpolate"))
@video.command("interpolate")
@_common
@_conditional
@click.option("--factor", type=int, default=2, show_default=True, help="Frame-rate factor: factor - 1 frames between each pair.")
def interpolate_command(prior, out, seed, video_path, **options):
    """Make frames between the frames of a video."""
    _single("interpolate", out, seed, video_path, {"prior": prior, **options})


@job_option(_task("upscale"))
@video.command("upscale")
@_common
@_conditional
@click.option("--factor", type=int, default=2, show_default=True, help="Spatial factor: the prior's frame size / the input's.")
def upscale_command(prior, out, seed, video_path, **options):
    """Make every frame of a video larger (spatial super-resolution)."""
    _single("upscale", out, seed, video_path, {"prior": prior, **options})


@video.command("train")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the trained prior.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--image-steps", type=int, default=None, help="Steps of the image stage (default: the recipe's).")
@click.option("--temporal-steps", type=int, default=None, help="Steps of the temporal stage (default: the recipe's).")
def train_command(out, seed, image_steps, temporal_steps):
    """Train zoo:moving-digits (both stages of its recipe); load it with zoo:moving-digits:path=OUT."""
    from diff_video.train import train

    record = train(out, seed=seed, image_steps=image_steps, temporal_steps=temporal_steps)
    stages = record["stages"]
    click.echo(
        f"trained in {record['wall_time_s']:.0f} s (image {stages['image']['steps']} steps, temporal {stages['temporal']['steps']} "
        f"steps) -> {out}"
    )


@video.command("evaluate")
@click.option("--path", type=click.Path(path_type=Path), default=None, help="A trained folder (default: the shipped weights).")
@click.option("--n", type=int, default=64, show_default=True, help="Clips per set.")
@click.option("--steps", type=int, default=50, show_default=True)
@click.option("--card/--no-card", default=False, help="Also write metrics.json and README.md (the model card) into the folder.")
def evaluate_command(path, n, steps, card):
    """Measure zoo:moving-digits as its model card reports it (frame quality, motion, Frechet distances)."""
    from diff_video.evaluate import evaluate, write_card

    figures = evaluate(path, n=n, steps=steps)
    if card:
        write_card(path, figures)
    click.echo(json.dumps(figures["figures"], indent=2))


def _edit_options(options: dict):
    from diff_video.editing.run import EditOptions

    fmt = options.pop("format", "gif,mp4")
    outputs = tuple(part for part in str(fmt).replace(" ", "").split(",") if part)
    return EditOptions(outputs=outputs, **options)


def video_edit_task(prior, target, **options):
    """video edit: the edit (.gif/.mp4), the side-by-side comparison (-compare.gif/.mp4) and .json metrics per input video"""
    from diff_video.editing.run import prepare_edit

    job = prepare_edit(_edit_options({"prior": prior, "target": str(target), **options}))

    def run_item(item):
        if item.path is None:
            raise DiffcoreError("video edit needs video files as items ([items] folder, glob or manifest)")
        files = job(item.path)
        renamed = {"metrics.json": ".json"}
        return {renamed.get(name, name.replace("edit.", ".").replace("compare.", "-compare.")): data for name, data in files.items()}

    return run_item


@job_option(video_edit_task)
@video.command("edit")
@click.option("--prior", required=True, metavar="SPEC", help="An image prior: zoo:digits, diffusers:path=..., stable-diffusion:...")
@click.option("--video", "video_path", required=True, type=click.Path(path_type=Path), help="The video to edit (MP4, GIF, ...).")
@click.option("--target", required=True, help="What to edit towards: a class index or name (zoo priors) or a prompt.")
@click.option(
    "--editor",
    default="pix2video",
    show_default=True,
    type=click.Choice(["per-frame", "pix2video", "cross-frame", "fatezero", "tune-a-video", "video-p2p"]),
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (edit, comparison, metrics.json).")
@click.option("--source", default=None, help="The condition the video is inverted under (default: the prior's unconditional model).")
@click.option("--steps", type=int, default=20, show_default=True, help="DDIM steps of the full schedule.")
@click.option("--strength", type=float, default=0.8, show_default=True, help="How far to invert (share of the schedule).")
@click.option("--guidance", type=float, default=1.0, show_default=True, help="Classifier-free guidance scale of the target.")
@click.option("--chunk", type=int, default=8, show_default=True, help="Frames per pass (memory grows with it, not with the video).")
@click.option("--refine", type=int, default=2, show_default=True, help="Fixed-point iterations per inversion step.")
@click.option(
    "--null-text", type=int, default=0, show_default=True, help="Null-text inversion: Adam iterations per step (text priors, --guidance)."
)
@click.option("--weight", type=float, default=None, help="pix2video: weight of the guided update (default 0.5).")
@click.option("--resize", is_flag=True, help="Resize the input frames to the prior's image size.")
@click.option("--start", type=float, default=None, help="Read from this time (s).")
@click.option("--end", type=float, default=None, help="Read up to this time (s).")
@click.option("--stride", type=int, default=1, show_default=True, help="Read every k-th frame.")
@click.option("--count", type=int, default=None, help="Read at most this many frames (after --stride).")
@click.option("--format", "format", default="gif,mp4", show_default=True, help="Files to write: gif, mp4 or both.")
@click.option("--fps", type=float, default=8.0, show_default=True, help="Frame rate of the written files.")
@click.option("--scale", type=int, default=4, show_default=True, help="Integer upscaling of the written files (nearest).")
@device_options
def edit_command(video_path, out, **options):
    """Edit a video with an image prior (per-frame, pix2video, cross-frame, fatezero, tune-a-video, video-p2p): edit, comparison,
    metrics."""
    from diff_video.editing.run import prepare_edit

    _check_out(out)
    job = prepare_edit(_edit_options(options))
    files = job(video_path)
    _publish(files, out)
    metrics = json.loads(files["metrics.json"])["metrics"]
    click.echo(
        f"edit ({options['editor']}): {metrics['frames']} frames, warp error {metrics['warp_error']:.4f} ({metrics['seconds']:.1f} s) -> "
        f"{out}"
    )
