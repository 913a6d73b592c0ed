"""``diffcore collage``: draw a large canvas from a window prior and write the image and its metrics."""

from __future__ import annotations

from pathlib import Path

import click

from diff_collage.prior import METHODS
from diff_collage.separators import STRATEGIES
from diffcore.devices import device_options
from diffcore.jobs import job_option


def _collage_task(**options):
    from diff_collage.drawing import collage_task

    return collage_task(**options)


def _check_out(out: Path) -> None:
    """The rule of :func:`diffcore.tour.write_folder`, checked before any work: a new folder, an empty
    one, or an earlier output (one holding metrics.json), which is then replaced whole."""
    from diffcore.errors import DiffcoreError

    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / "metrics.json").is_file())):
        what = "a file" if not out.is_dir() else "a folder that is not an earlier output (no metrics.json)"
        raise DiffcoreError(f"--out {str(out)!r} exists and is {what}; choose another folder")


@job_option(_collage_task)
@click.command("collage")
@click.option(
    "--prior", "prior_spec", required=True, metavar="SPEC", help="The window prior, e.g. zoo:textures or zoo:patches (options inline)."
)
@click.option(
    "--graph",
    "graph_name",
    default="chain",
    show_default=True,
    metavar="GRAPH",
    help="chain, cycle, grid, or a JSON file of windows (docs/collage.md).",
)
@click.option("--windows", default=4, show_default=True, type=click.IntRange(min=1), help="Windows of a chain or a cycle.")
@click.option("--rows", default=2, show_default=True, type=click.IntRange(min=1), help="Rows of a grid.")
@click.option("--cols", default=2, show_default=True, type=click.IntRange(min=1), help="Columns of a grid.")
@click.option(
    "--overlap",
    default=None,
    type=click.IntRange(min=0),
    help="Cells that neighbouring windows share (latent cells for a latent prior); default half a window.",
)
@click.option(
    "--axis",
    default=-1,
    show_default=True,
    type=int,
    help="The sample axis a chain or cycle runs along, from the end: -1 the width, -2 the height.",
)
@click.option("--wrap", is_flag=True, help="A grid whose columns wrap around (a 360° panorama).")
@click.option("--method", default="diffcollage", show_default=True, type=click.Choice(METHODS), help="How window predictions combine.")
@click.option(
    "--separator",
    default="crop",
    show_default=True,
    type=click.Choice(STRATEGIES),
    help="How DiffCollage derives the overlaps' scores from the window prior.",
)
@click.option(
    "--separator-steps", default=1, show_default=True, type=click.IntRange(min=1), help="Fixed-point calls of the 'mode' separator."
)
@click.option("--steps", default=25, show_default=True, type=click.IntRange(min=1), help="Sampler steps.")
@click.option("--sampler", default="ddim", show_default=True, metavar="SPEC", help="Any registered sampler, options inline (ddim:eta=1).")
@click.option("--seed", default=0, show_default=True, type=int, help="The same seed gives the same canvas.")
@click.option("--n", "n", default=1, show_default=True, type=click.IntRange(min=1), help="Canvases to draw.")
@click.option(
    "--label",
    default=None,
    metavar="CLASS",
    help="One class (name or index) for every window; without one a class-conditional prior is used unconditionally.",
)
@click.option("--labels", default=None, metavar="LIST", help="One class per window, comma-separated; NAME*K repeats one (brick*4,grass*4).")
@click.option("--prompt", default=None, help="One prompt for every window (text-conditional priors).")
@click.option("--prompts", default=None, metavar="LIST", help="One prompt per window, comma-separated; TEXT*K repeats one.")
@click.option(
    "--max-batch",
    "max_batch",
    default=None,
    type=click.IntRange(min=1),
    help="The most windows in one network call (default: all of a step).",
)
@device_options
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder: collage.png and metrics.json."
)
def collage_command(
    prior_spec,
    graph_name,
    windows,
    rows,
    cols,
    overlap,
    axis,
    wrap,
    method,
    separator,
    separator_steps,
    steps,
    sampler,
    seed,
    n,
    label,
    labels,
    prompt,
    prompts,
    max_batch,
    device,
    dtype,
    out,
) -> None:
    """Draw a large canvas from a prior on small windows (DiffCollage, MultiDiffusion or Mixture of Diffusers).

    Writes collage.png (the canvases, decoded in tiles for a latent prior) and metrics.json
    (method, graph, sizes, seconds, sequential network calls, seam score); an earlier output in
    --out is replaced whole. Bad input stops with a one-line error before anything is written.
    --job draws one seed per item (<key>.png, <key>.json).
    """
    import json
    import time

    from diff_collage.drawing import png, prepare
    from diffcore.errors import DiffcoreError
    from diffcore.tour import write_folder

    started = time.perf_counter()
    _check_out(out)
    drawing = prepare(
        prior_spec,
        graph=graph_name,
        windows=windows,
        rows=rows,
        cols=cols,
        overlap=overlap,
        axis=axis,
        wrap=wrap,
        method=method,
        separator=separator,
        separator_steps=separator_steps,
        steps=steps,
        sampler=sampler,
        n=n,
        label=label,
        labels=labels,
        prompt=prompt,
        prompts=prompts,
        max_batch=max_batch,
        device=device,
        dtype=dtype,
    )
    x, measured = drawing(seed)
    image = png(x)
    metrics = drawing.metrics(measured)
    metrics["seconds"]["total"] = round(time.perf_counter() - started, 3)
    try:
        write_folder(out, {"collage.png": image, "metrics.json": json.dumps(metrics, indent=2) + "\n"})
    except OSError as exc:
        raise DiffcoreError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
    g, score = drawing.graph, metrics["seam_score"]
    seam = f", seam score {score:.3f}" if score is not None else ""
    click.echo(
        f"{method} on a {g.kind} of {g.n_windows} windows: canvas {tuple(metrics['image_shape'])}, "
        f"{metrics['network_calls']} network calls in {measured['sample_seconds']:.1f} s{seam}\nwrote collage.png, metrics.json to {out}"
    )
