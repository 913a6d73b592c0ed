"""``diffcore inverse``: the command group of diff-inverse (``bench gmm``; more subcommands join it)."""

from __future__ import annotations

import os
from pathlib import Path

import click


def _ints(ctx, param, values) -> tuple[int, ...]:
    """``--dx 8 --dx 80`` and ``--dx 8,80`` both give (8, 80)."""
    out = []
    for item in values:
        for part in str(item).replace(",", " ").split():
            try:
                out.append(int(part))
            except ValueError:
                raise click.BadParameter(f"{part!r} is not an integer") from None
    return tuple(out)


@click.group("inverse")
def inverse() -> None:
    """Inverse problems: posterior sampling with any diffusion prior."""


@inverse.group("bench")
def bench() -> None:
    """Benchmarks against exact posteriors."""


@bench.command("gmm")
@click.option("--dx", "dxs", multiple=True, default=("8,80,800",), show_default=True, callback=_ints, help="Dimensions of x: repeat the option or give a list, 8,80.")
@click.option("--dy", "dys", multiple=True, default=("1,2,4",), show_default=True, callback=_ints, help="Dimensions of y.")
@click.option("--steps", "steps_list", multiple=True, default=("20,100",), show_default=True, callback=_ints, help="Network calls per sample.")
@click.option("--problems", type=int, default=20, show_default=True)
@click.option("--samples", type=int, default=2000, show_default=True)
@click.option("--solvers", "solver_names", multiple=True, help="Solvers to run (default: mcgdiff ddrm dps ddnm+ pigdm red-diff).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads (the reference figures use 1).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Markdown file to write; the plot goes next to it (.png).")
def gmm(dxs, dys, steps_list, problems, samples, solver_names, seed, threads, out) -> None:
    """The Gaussian-mixture benchmark of Cardoso et al. (2024): SW to the exact posterior."""
    import torch

    from diff_inverse.bench import gmm as bench_gmm
    from diff_inverse.solvers import SOLVERS
    from diffcore.errors import DiffcoreError

    torch.set_num_threads(threads)
    solvers = tuple(n for item in solver_names for n in item.replace(",", " ").split()) or bench_gmm.DEFAULT_SOLVERS
    unknown = [s for s in solvers if s not in SOLVERS]
    if unknown:
        raise DiffcoreError(f"unknown solver(s) {', '.join(unknown)}; known: {', '.join(SOLVERS)}")
    if not dxs or not dys or not steps_list or max(dys) > min(dxs) or min(dys) < 1 or problems < 1 or samples < 2:
        raise DiffcoreError("need 1 <= d_y <= d_x for every pair, problems >= 1 and samples >= 2")

    def progress(d_x, d_y, steps):
        click.echo(f"done d_x={d_x} d_y={d_y} steps={steps}", err=True)

    results = bench_gmm.run(dxs, dys, steps_list, problems=problems, samples=samples, solvers=solvers, seed=seed, progress=progress)
    text = bench_gmm.markdown(results, solvers, problems=problems, samples=samples)
    png = out.with_suffix(".png")
    tmp_png = png.with_name(png.name + ".part.png")
    if bench_gmm.plot(results, solvers, tmp_png):
        os.replace(tmp_png, png)
        text += f"\n![SW per cell]({png.name})\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, out)
    click.echo(text)
