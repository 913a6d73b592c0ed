"""``diffcore collage``: draw a large canvas from a window prior and write the image and its metrics."""

from __future__ import annotations

import os
from pathlib import Path

import click

from diff_collage.prior import METHODS
from diff_collage.separators import STRATEGIES
from diffcore.devices import device_options


def _write_folder(out: Path, files: dict[str, bytes]) -> None:
    """A new folder appears whole (written as a temporary folder next to it, then renamed); in an
    existing folder each file is replaced atomically."""
    import shutil
    import tempfile

    from diffcore.tour import write_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_dir():
        for name, data in files.items():
            write_atomic(out / name, data)
        return
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part"))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        os.chmod(tmp, 0o755)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    (method, graph, sizes, seconds, sequential network calls, seam score). Bad input stops with a
    one-line error before anything is written.
    """
    import json
    import time

    import torch

    import diffcore
    from diff_collage.prior import collage
    from diff_collage.seams import seam_score
    from diff_collage.spec import make_graph, window_conds
    from diffcore.devices import build_prior
    from diffcore.errors import DiffcoreError
    from diffcore.tour import encode_png, image_grid

    started = time.perf_counter()
    if out.exists() and not out.is_dir():
        raise DiffcoreError(f"--out {str(out)!r} exists and is not a folder")
    diffcore.create("sampler", sampler)  # an unknown sampler or option fails before any work
    window = build_prior(prior_spec, device=device, dtype=dtype)
    graph = make_graph(window, graph_name, windows=windows, rows=rows, cols=cols, overlap=overlap, axis=axis, wrap=wrap)
    conds = window_conds(window, graph.n_windows, label=label, labels=labels, prompt=prompt, prompts=prompts)
    if conds is None and window.accepts and window.null_cond is not None and window.null_cond.given():
        from diffcore.priors import unconditional

        window = unconditional(window)
    prior = collage(window, graph, method=method, separator=separator, separator_steps=separator_steps, max_batch=max_batch, conds=conds)
    image_shape = tuple(prior.image_shape)
    if len(image_shape) != 3 or image_shape[0] not in (1, 3):
        raise DiffcoreError(f"`diffcore collage` draws images (C, H, W) with C = 1 or 3; this collage's samples have shape {image_shape}")
    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    x = diffcore.sample(prior, n, steps=steps, sampler=sampler, generator=generator)
    sample_seconds = time.perf_counter() - t0
    x = x.detach().cpu()
    scale = prior.latent.factors if prior.latent is not None else 1
    score = seam_score(x, graph, scale=scale) if graph.n_windows > 1 else None
    wide = image_shape[2] >= 2 * image_shape[1]
    try:
        png = encode_png(image_grid(x, nrow=1 if wide else None))
    except ImportError as exc:
        raise DiffcoreError(str(exc)) from exc
    metrics = {
        "method": method,
        "separator": separator if method == "diffcollage" else None,
        "prior": prior_spec,
        "graph": graph.to_dict(),
        "windows": graph.n_windows,
        "window_shape": list(window.sample_shape),
        "canvas_shape": list(prior.sample_shape),
        "image_shape": list(image_shape),
        "n": n,
        "steps": steps,
        "sampler": sampler,
        "seed": seed,
        "conditions": {"label": label, "labels": labels, "prompt": prompt, "prompts": prompts},
        "network_calls": prior.calls,
        "network_calls_per_step": prior.calls / steps,
        "seam_score": score,
        "seconds": {"sample": round(sample_seconds, 3), "total": round(time.perf_counter() - started, 3)},
        "device": str(prior.device),
    }
    try:
        _write_folder(out, {"collage.png": png, "metrics.json": (json.dumps(metrics, indent=2) + "\n").encode("utf-8")})
    except OSError as exc:
        raise DiffcoreError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
    seam = f", seam score {score:.3f}" if score is not None else ""
    click.echo(
        f"{method} on a {graph.kind} of {graph.n_windows} windows: canvas {tuple(image_shape)}, {prior.calls} network calls in {sample_seconds:.1f} s{seam}\nwrote collage.png, metrics.json to {out}"
    )
