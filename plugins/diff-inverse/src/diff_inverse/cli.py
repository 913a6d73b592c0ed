"""``diffcore inverse``: the command group of diff-inverse (``bench gmm``; more subcommands join it)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from diffcore.devices import device_options, speed_options, tuned
from diffcore.jobs import job_option


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
@click.option(
    "--dx",
    "dxs",
    multiple=True,
    default=("8,80,800",),
    show_default=True,
    callback=_ints,
    help="Dimensions of x: repeat the option or give a list, 8,80.",
)
@click.option("--dy", "dys", multiple=True, default=("1,2,4",), show_default=True, callback=_ints, help="Dimensions of y.")
@click.option(
    "--steps", "steps_list", multiple=True, default=("20,100",), show_default=True, callback=_ints, help="Network calls per sample."
)
@click.option("--problems", type=int, default=20, show_default=True)
@click.option("--samples", type=int, default=2000, show_default=True)
@click.option(
    "--solvers", "solver_names", multiple=True, help="Solvers to run (default: mcgdiff ddrm dps ddnm+ pigdm red-diff diffpir daps)."
)
@click.option(
    "--settings",
    type=click.Choice(["authors", "defaults"]),
    default="authors",
    show_default=True,
    help="The solvers' options: the authors' where they have one, or every solver at its defaults.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--weights",
    type=click.Choice(["problem", "block"]),
    default="problem",
    show_default=True,
    help="Mixture weights drawn per problem, or once per (d_x, steps) block as the authors' script does.",
)
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads (the reference figures use 1).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Markdown file to write; the plot goes next to it (.png)."
)
def gmm(dxs, dys, steps_list, problems, samples, solver_names, settings, seed, weights, threads, out) -> None:
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

    results = bench_gmm.run(
        dxs,
        dys,
        steps_list,
        problems=problems,
        samples=samples,
        solvers=solvers,
        seed=seed,
        weights=weights,
        settings=settings,
        progress=progress,
    )
    text = bench_gmm.markdown(results, solvers, problems=problems, samples=samples, weights=weights, settings=settings)
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


@bench.command("images")
@click.option(
    "--prior",
    "prior_spec",
    metavar="SPEC",
    help="An image prior: zoo:digits, zoo:patches, zoo:phantoms (zoo:NAME:path=DIR for weights trained elsewhere).",
)
@click.option(
    "--operators",
    "operator_items",
    multiple=True,
    metavar="LIST",
    help="Rows: names of the prior's default operators or operator specs, comma-separated or repeated (default: all the prior's rows).",
)
@click.option(
    "--solvers",
    "solver_items",
    multiple=True,
    metavar="LIST",
    help="Columns: solver specs (default: every solver of diff_inverse.bench.images.DEFAULT_SOLVERS).",
)
@click.option(
    "--steps", default=20, show_default=True, type=click.IntRange(min=1), help="Network calls per image, the same for every solver."
)
@click.option("--n", "n", default=8, show_default=True, type=click.IntRange(min=1), help="Held-out test images.")
@click.option(
    "--sigma-y",
    "sigma_y",
    default=0.05,
    show_default=True,
    type=float,
    help="Measurement noise of operators given as specs (the default rows carry their own).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the measurement noise (seed) and the solvers (seed + 1).")
@click.option(
    "--samples",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Posterior samples per image; above 1 the tables also score their mean (the posterior-mean estimate).",
)
@click.option(
    "--check", "check", is_flag=True, help="Measure the page's check section instead (what the tests repeat; takes no other selection)."
)
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads.")
@device_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Markdown document: this prior's section is replaced (or appended), the others are kept.",
)
def images_command(prior_spec, operator_items, solver_items, steps, n, sigma_y, seed, samples, check, threads, device, dtype, out) -> None:
    """PSNR and SSIM of every solver on held-out images of a prior, next to the classical baselines."""
    import math
    import shlex

    import torch

    from diff_inverse.bench import images as bench_images
    from diffcore.errors import DiffcoreError

    if not (math.isfinite(sigma_y) and sigma_y >= 0):
        raise DiffcoreError(f"--sigma-y must be a finite number >= 0, got {sigma_y}")
    if out.exists() and not out.is_file():
        raise DiffcoreError(f"--out {str(out)!r} exists and is not a file")
    if threads < 1:
        raise DiffcoreError(f"--threads must be >= 1, got {threads}")
    if check == (prior_spec is not None):
        raise DiffcoreError("give --prior SPEC, or --check (the page's check section) without it")
    torch.set_num_threads(threads)

    def progress(row, solver, cell):
        what = cell if isinstance(cell, str) else f"PSNR {cell.mean_psnr:.2f} dB, SSIM {cell.mean_ssim:.3f}, {cell.seconds:.1f} s"
        click.echo(f"{row} {solver}: {what}", err=True)

    if check:
        result = bench_images.run_check(progress=progress)
    else:
        result = bench_images.run(
            prior_spec,
            operators=bench_images.split_items(operator_items) or None,
            solvers=bench_images.split_items(solver_items) or None,
            steps=steps,
            seed=seed,
            n=n,
            sigma_y=sigma_y,
            samples=samples,
            progress=progress,
            device=device,
            dtype=dtype,
        )
        args = ["--prior", bench_images.public_spec(prior_spec)]
        if operator_items:
            args += ["--operators", ",".join(r.row.key for r in result.rows), "--sigma-y", f"{sigma_y:g}"]
        if solver_items:
            args += ["--solvers", ",".join(result.solvers)]
        args += ["--n", str(n), "--steps", str(steps), "--seed", str(seed)] + (["--samples", str(samples)] if samples > 1 else [])
        args += ["--out", out.name if out.is_absolute() else str(out)]
        result.command = "diffcore inverse bench images " + " ".join(shlex.quote(a) for a in args)
    try:
        bench_images.write(out, result)
    except OSError as exc:
        raise DiffcoreError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
    click.echo(bench_images.markdown(result))
    click.echo(f"wrote the {result.key} section of {out}", err=True)


# -- solve ---------------------------------------------------------------------------------------
def _solve_task(**options):
    from diff_inverse.restore import solve_task

    return solve_task(**options)


@job_option(_solve_task)
@inverse.command("solve")
@click.option("--prior", "prior_spec", required=True, metavar="SPEC", help="An image prior, e.g. zoo:digits (options inline).")
@click.option(
    "--operator",
    "operator_spec",
    required=True,
    metavar="SPEC",
    help="Operator with options inline, e.g. 'sr:factor=4' or 'inpaint:box=(4,4,8,8)'.",
)
@click.option(
    "--solver",
    "solver_spec",
    default="ddrm",
    show_default=True,
    metavar="SPEC",
    help="Solver with options inline (see `diffcore available solver`).",
)
@click.option("--steps", default=20, show_default=True, type=click.IntRange(min=1), help="Network calls per sample.")
@click.option(
    "--measurement",
    "measurement_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Restore this measurement y as given (an image file for image-shaped y, else .npy or .safetensors) instead of simulating one.",
)
@click.option(
    "--mask",
    "mask_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Inpainting: the mask image (white = observed).",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The clean image (PNG, JPEG, ...): measured and restored; with --measurement, the ground truth to score against. "
    "Default without --measurement: an embedded held-out test image of the prior.",
)
@click.option("--resize", is_flag=True, help="Resize an input image of another size to the prior's.")
@click.option(
    "--sigma-y",
    "sigma_y",
    type=float,
    default=None,
    help="Standard deviation of the measurement noise (default: the operator's, 0 unless its spec says).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seeds the measurement noise and the solver: the same seed gives the same images.",
)
@device_options
@speed_options
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: restoration.png, measurement.png, input.png, metrics.json.",
)
def solve_command(
    prior_spec,
    operator_spec,
    solver_spec,
    steps,
    measurement_path,
    mask_path,
    input_path,
    resize,
    sigma_y,
    seed,
    device,
    dtype,
    compile_network,
    autocast,
    channels_last,
    out,
) -> None:
    """Restore one image: a measurement given with --measurement, or one simulated from a clean image.

    Writes the restoration, the measurement (or, when y is not an image, its pseudo-inverse
    A_pinv(y) as measurement_pinv.png), the input when there is one, and metrics.json: with a
    ground truth, PSNR and SSIM of the restoration and of the classical baselines (the
    pseudo-inverse; bicubic and Lanczos upsampling for super-resolution), the settings and the
    seconds. --job restores every measurement of a folder. Bad input stops before anything is
    written, and --out is replaced whole.
    """
    import math
    import time

    import torch

    from diff_inverse import restore as steps_of
    from diffcore.errors import DiffcoreError
    from diffcore.registry import parse_spec

    started = time.perf_counter()
    if sigma_y is not None and not (math.isfinite(sigma_y) and sigma_y >= 0):
        raise DiffcoreError(f"--sigma-y must be a finite number >= 0, got {sigma_y}")
    if out.exists() and not out.is_dir():
        raise DiffcoreError(f"--out {str(out)!r} exists and is not a folder")
    for what, path in (("image", input_path), ("measurement", measurement_path), ("mask", mask_path)):
        if path is not None and not path.is_file():
            raise DiffcoreError(f"cannot read {what} {str(path)!r}: no such file")

    solver_name, solver_options = parse_spec(solver_spec)
    solver = steps_of.build("solver", solver_name, **solver_options)  # an unknown solver or option fails before any work
    prior, shape = steps_of.prepared_prior(prior_spec, device=device, dtype=dtype)
    truth, source = _ground_truth(prior_spec, shape, input_path, resize, simulate=measurement_path is None)
    operator = steps_of.build_operator(operator_spec, shape, sigma_y=sigma_y, mask=mask_path)
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same seed gives the same result on every device
    if measurement_path is None:
        y = operator.measure(truth[None].to(prior.device), generator).cpu()
    else:
        y = steps_of.as_measured(operator, steps_of.read_measurement(measurement_path, operator.y_shape))
    with tuned(prior, compile=compile_network, autocast=autocast, channels_last=channels_last):
        restored, solve_seconds = steps_of.restore(prior, operator, y, solver=solver, steps=steps, generator=generator)

    files = steps_of.result_files(restored, y, operator, truth=truth, spec=operator_spec)
    scored = steps_of.scores({"restoration": restored, **steps_of.classical.baselines(operator, y)}, truth)
    metrics = {
        "restoration": scored.pop("restoration"),
        "pinv": scored.pop("pinv", None),
        "baselines": scored,
        "settings": {
            "prior": prior_spec,
            "operator": operator_spec,
            "solver": solver_spec,
            "steps": steps,
            "sigma_y": float(getattr(operator, "sigma_y", 0.0)),
            "seed": seed,
            "input": source,
            "measurement": str(measurement_path) if measurement_path is not None else None,
            "mask": str(mask_path) if mask_path is not None else None,
            "resize": resize,
            "x_shape": list(shape),
            "y_shape": list(y.shape[1:]),
            "metrics": steps_of.METRICS if truth is not None else "none: no ground truth (pass --input to score against one)",
        },
        "seconds": {"solve": round(solve_seconds, 3), "total": round(time.perf_counter() - started, 3)},
    }
    files["metrics.json"] = steps_of.metrics_json(metrics)
    try:
        steps_of.write_folder(out, files)
    except OSError as exc:
        raise DiffcoreError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
    click.echo(_summary(metrics) + f"\nwrote {', '.join(files)} to {out}")


def _ground_truth(prior_spec: str, shape, input_path, resize: bool, *, simulate: bool):
    """The clean image and where it came from: --input, else (when simulating) the prior's embedded test image, else none."""
    from diff_inverse import images, zoo

    if input_path is not None:
        return images.read_image(input_path, shape, resize=resize), str(input_path)
    if simulate:
        return zoo.embedded_image(prior_spec, shape)
    return None, None


def _summary(metrics: dict) -> str:
    r = metrics["restoration"]
    if r is None:
        return "restored the measurement (no ground truth, no scores)"
    line = f"restoration PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}"
    named = {"pseudo-inverse": metrics["pinv"], **metrics["baselines"]}
    return line + "".join(f"; {k} PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.3f}" for k, v in named.items() if v is not None)
