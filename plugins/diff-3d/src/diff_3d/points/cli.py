"""``diffcore 3d points``: generate point clouds from a point-cloud prior, or complete a partial one (by replacement).

Both write one binary ``.ply`` per cloud, a turntable GIF of all of them side by side and
``run.json`` (the settings and the time). Every input is checked before anything is written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from diffcore.devices import device_options
from diffcore.errors import DiffcoreError

PRIOR_HELP = "A point-cloud prior: zoo:shapes (shipped), or zoo:shapes:path=DIR for weights that training wrote."


@click.group("points")
def points() -> None:
    """Diffusion on point clouds (PVD-style): generate shapes, complete partial ones; prior zoo:shapes."""


def _prior(spec: str, n_points: int, device, dtype):
    from diffcore.devices import build_prior

    prior = build_prior(spec, device=device, dtype=dtype)
    if not hasattr(prior, "with_points") or tuple(prior.sample_shape[1:]) != (3,):
        raise DiffcoreError(f"prior {spec!r} is not a point-cloud prior (samples (P, 3)); use zoo:shapes")
    return prior.with_points(n_points) if n_points else prior


def _write(out: Path, clouds, frames_of, settings: dict, start: float) -> list[Path]:
    import torch

    from diff_3d.points.io import ply_bytes
    from diffcore.tour import encode_gif, write_atomic

    out.mkdir(parents=True, exist_ok=True)
    written = [write_atomic(out / f"cloud-{i}.ply", ply_bytes(c)) for i, c in enumerate(clouds)]
    frames = torch.cat([frames_of(c) for c in clouds], dim=3)  # the clouds side by side
    written.append(write_atomic(out / "turntable.gif", encode_gif(frames, fps=12)))
    settings["seconds"] = round(time.perf_counter() - start, 2)
    written.append(write_atomic(out / "run.json", json.dumps(settings, indent=2) + "\n"))
    return written


@points.command("generate")
@click.option("--prior", "prior_spec", default="zoo:shapes", show_default=True, metavar="SPEC", help=PRIOR_HELP)
@click.option("--label", default=None, help="Class, by name or index (zoo:shapes: sphere, box, torus, cylinder, cone); none: any class.")
@click.option("--n", "n", default=4, show_default=True, type=click.IntRange(min=1), help="Clouds to generate.")
@click.option("--points", "n_points", default=None, type=click.IntRange(min=1), help="Points per cloud (default: the prior's, 512).")
@click.option("--steps", default=100, show_default=True, type=click.IntRange(min=1), help="Sampler steps (at most 1000).")
@click.option("--sampler", default="ddpm", show_default=True, help="Any diffcore sampler: ddpm, ddim, dpm++2m, ...")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--frames", default=24, show_default=True, type=click.IntRange(min=1), help="Turntable frames.")
@click.option("--size", default=96, show_default=True, type=click.IntRange(min=8), help="Turntable size in pixels, per cloud.")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder: cloud-*.ply, turntable.gif, run.json."
)
@device_options
def generate_command(prior_spec, label, n, n_points, steps, sampler, seed, frames, size, out, device, dtype):
    """Sample point clouds from the prior with any diffcore sampler."""
    import torch

    import diffcore
    from diff_3d.conditioning import condition
    from diff_3d.points.turntable import turntable

    start = time.perf_counter()
    prior = _prior(prior_spec, n_points, device, dtype)
    cond = condition(prior, label=label)
    clouds = diffcore.sample(prior, n, steps=steps, sampler=sampler, cond=cond, generator=torch.Generator().manual_seed(seed)).cpu()
    settings = {"command": "generate", "prior": prior_spec, "label": label, "n": n, "points": prior.sample_shape[0], "steps": steps}
    settings |= {"sampler": sampler, "seed": seed}
    written = _write(out, clouds, lambda c: turntable(c, frames=frames, size=size), settings, start)
    click.echo(f"{n} clouds of {prior.sample_shape[0]} points in {settings['seconds']:.1f} s: {', '.join(str(p) for p in written[-2:])}")


@points.command("complete")
@click.option("--prior", "prior_spec", default="zoo:shapes", show_default=True, metavar="SPEC", help=PRIOR_HELP)
@click.option(
    "--partial",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The known points: .ply, .npy, or .xyz/.txt/.csv (x y z per line); at least 16 finite points, fewer than --points.",
)
@click.option("--label", default=None, help="Class, by name or index; none: any class.")
@click.option("--n", "n", default=1, show_default=True, type=click.IntRange(min=1), help="Completions to draw.")
@click.option(
    "--points", "n_points", default=None, type=click.IntRange(min=1), help="Points of a completed cloud (default: the prior's, 512)."
)
@click.option("--steps", default=100, show_default=True, type=click.IntRange(min=1), help="Steps (at most 1000).")
@click.option("--sampler", default="ddpm", show_default=True, type=click.Choice(["ddpm", "ddim"]), help="The step between replacements.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--frames", default=24, show_default=True, type=click.IntRange(min=1), help="Turntable frames.")
@click.option("--size", default=96, show_default=True, type=click.IntRange(min=8), help="Turntable size in pixels, per cloud.")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder: cloud-*.ply, turntable.gif, run.json."
)
@device_options
def complete_command(prior_spec, partial, label, n, n_points, steps, sampler, seed, frames, size, out, device, dtype):
    """Complete a partial point cloud: its points stay, the prior generates the rest (replacement); known points orange in the GIF."""
    import torch

    from diff_3d.conditioning import condition
    from diff_3d.points.completion import check_partial, complete
    from diff_3d.points.io import read_points
    from diff_3d.points.turntable import turntable

    start = time.perf_counter()
    known = read_points(partial)
    if n_points is not None:
        check_partial(known, n_points)  # before the prior loads: a bad file costs nothing
    prior = _prior(prior_spec, n_points, device, dtype)
    y = check_partial(known, prior.sample_shape[0])
    cond = condition(prior, label=label)
    clouds = complete(prior, y, n=n, steps=steps, sampler=sampler, cond=cond, generator=torch.Generator().manual_seed(seed)).cpu()
    settings = {"command": "complete", "prior": prior_spec, "partial": partial.name, "known_points": y.shape[0], "label": label, "n": n}
    settings |= {"points": prior.sample_shape[0], "steps": steps, "sampler": sampler, "seed": seed}
    written = _write(out, clouds, lambda c: turntable(c, frames=frames, size=size, known=y.shape[0]), settings, start)
    click.echo(f"{n} completions of {y.shape[0]} known points to {prior.sample_shape[0]} in {settings['seconds']:.1f} s: {written[-2]}")


__all__ = ["points"]
