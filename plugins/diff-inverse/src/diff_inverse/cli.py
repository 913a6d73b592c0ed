"""``diffcore inverse``: the command group of diff-inverse (``bench gmm``; more subcommands join it)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from diffcore.devices import device_options


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
@click.option(
    "--weights",
    type=click.Choice(["problem", "block"]),
    default="problem",
    show_default=True,
    help="Mixture weights drawn per problem, or once per (d_x, steps) block as the authors' script does.",
)
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads (the reference figures use 1).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Markdown file to write; the plot goes next to it (.png).")
def gmm(dxs, dys, steps_list, problems, samples, solver_names, seed, weights, threads, out) -> None:
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

    results = bench_gmm.run(dxs, dys, steps_list, problems=problems, samples=samples, solvers=solvers, seed=seed, weights=weights, progress=progress)
    text = bench_gmm.markdown(results, solvers, problems=problems, samples=samples, weights=weights)
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
@click.option("--prior", "prior_spec", required=True, metavar="SPEC", help="An image prior: zoo:digits, zoo:patches, zoo:phantoms (zoo:NAME:path=DIR for weights trained elsewhere).")
@click.option("--operators", "operator_items", multiple=True, metavar="LIST", help="Rows: names of the prior's default operators or operator specs, comma-separated or repeated (default: all the prior's rows).")
@click.option("--solvers", "solver_items", multiple=True, metavar="LIST", help="Columns: solver specs (default: ddrm ddnm+ pigdm dps red-diff projection).")
@click.option("--steps", default=20, show_default=True, type=click.IntRange(min=1), help="Network calls per image, the same for every solver.")
@click.option("--n", "n", default=8, show_default=True, type=click.IntRange(min=1), help="Held-out test images.")
@click.option("--sigma-y", "sigma_y", default=0.05, show_default=True, type=float, help="Measurement noise of operators given as specs (the default rows carry their own).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the measurement noise (seed) and the solvers (seed + 1).")
@click.option("--samples", default=1, show_default=True, type=click.IntRange(min=1), help="Posterior samples per image; above 1 the tables also score their mean (the posterior-mean estimate).")
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads.")
@device_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Markdown document: this prior's section is replaced (or appended), the others are kept.")
def images_command(prior_spec, operator_items, solver_items, steps, n, sigma_y, seed, samples, threads, device, dtype, out) -> None:
    """PSNR and SSIM of every solver on held-out images of a prior, next to the pseudo-inverse."""
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
    torch.set_num_threads(threads)

    def progress(row, solver, cell):
        what = cell if isinstance(cell, str) else f"PSNR {cell.mean_psnr:.2f} dB, SSIM {cell.mean_ssim:.3f}, {cell.seconds:.1f} s"
        click.echo(f"{row} {solver}: {what}", err=True)

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
    args = ["--prior", bench_images._public_spec(prior_spec)]
    if operator_items:
        args += ["--operators", ",".join(r.row.key for r in result.rows), "--sigma-y", f"{sigma_y:g}"]
    if solver_items:
        args += ["--solvers", ",".join(result.solvers)]
    args += ["--n", str(n), "--steps", str(steps), "--seed", str(seed)] + (["--samples", str(samples)] if samples > 1 else []) + ["--out", out.name if out.is_absolute() else str(out)]
    result.command = "diffcore inverse bench images " + " ".join(shlex.quote(a) for a in args)
    try:
        bench_images.write(out, result)
    except OSError as exc:
        raise DiffcoreError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
    click.echo(bench_images.markdown(result))
    click.echo(f"wrote the {result.key} section of {out}", err=True)


# -- solve ---------------------------------------------------------------------------------------
def _image_shape(prior) -> tuple[int, int, int]:
    from diffcore.errors import DiffcoreError

    shape = tuple(prior.image_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        what = f"samples of shape {shape}"
        raise DiffcoreError(f"`diffcore inverse solve` needs an image prior (C, H, W) with C = 1 or 3; this one has {what}")
    return shape


def _embedded_image(prior_spec: str, shape: tuple[int, int, int]):
    """A held-out test image of the zoo data of ``prior_spec`` with the prior's shape, and its description."""
    from diffcore.errors import DiffcoreError
    from diffcore.registry import parse_spec

    name, _ = parse_spec(prior_spec)
    missing = f"there is no embedded test image for prior {name!r} ({shape[0]}x{shape[1]}x{shape[2]}); pass one with --input"
    if not name.startswith("zoo:"):
        raise DiffcoreError(missing)
    try:
        from diff_zoo import data
        from diff_zoo.recipes import get_recipe
    except ImportError:
        raise DiffcoreError(missing + " (diff-zoo is not installed)") from None
    recipe = get_recipe(name)
    for key, image in data.held_out_images(recipe.data).items():
        if tuple(image.shape) == shape:
            return image.float(), f"{name} held-out image {key!r}"
    if recipe.data == "digits":
        test = data.build("digits", **recipe.data_options).test
        if tuple(test.codes.shape[1:]) == shape:
            return test.images([0])[0], f"{name} held-out test digit 0 (label {int(test.labels[0])}) of scikit-learn's digits"
    raise DiffcoreError(missing)


def _write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into the folder ``out``: a new folder appears whole (renamed from a temporary one)."""
    import shutil
    import tempfile

    from diffcore.tour import write_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_dir():  # an existing folder: each file is replaced atomically
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


@inverse.command("solve")
@click.option("--prior", "prior_spec", required=True, metavar="SPEC", help="An image prior, e.g. zoo:digits (options inline).")
@click.option("--operator", "operator_spec", required=True, metavar="SPEC", help="Operator with options inline, e.g. 'sr:factor=4' or 'inpaint:box=(4,4,8,8)'.")
@click.option("--solver", "solver_spec", default="ddrm", show_default=True, metavar="SPEC", help="Solver with options inline (see `diffcore available solver`).")
@click.option("--steps", default=20, show_default=True, type=click.IntRange(min=1), help="Network calls per sample.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Image file (PNG, JPEG, ...); default: an embedded held-out test image of the prior.")
@click.option("--resize", is_flag=True, help="Resize an input image of another size to the prior's.")
@click.option("--sigma-y", "sigma_y", type=float, default=None, help="Standard deviation of the measurement noise (default: the operator's, 0 unless its spec says).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the measurement noise and the solver: the same seed gives the same images.")
@device_options
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder: restoration.png, measurement.png, input.png, metrics.json.")
def solve_command(prior_spec, operator_spec, solver_spec, steps, input_path, resize, sigma_y, seed, device, dtype, out) -> None:
    """Restore one image: measure it with an operator, then sample the posterior with a solver.

    Writes the restoration, the measurement (or, when y is not an image, its pseudo-inverse
    A_pinv(y) as measurement_pinv.png), the input, and metrics.json (PSNR and SSIM of the
    restoration and of the pseudo-inverse baseline against the input, the settings, seconds).
    Bad input stops before anything is written.
    """
    import json
    import math
    import time

    import torch

    import diffcore
    from diff_inverse import images
    from diff_inverse.solve import solve
    from diffcore.devices import build_prior
    from diffcore.errors import DiffcoreError
    from diffcore.registry import parse_spec

    started = time.perf_counter()
    if sigma_y is not None and not (math.isfinite(sigma_y) and sigma_y >= 0):
        raise DiffcoreError(f"--sigma-y must be a finite number >= 0, got {sigma_y}")
    if out.exists() and not out.is_dir():
        raise DiffcoreError(f"--out {str(out)!r} exists and is not a folder")
    if input_path is not None and not input_path.is_file():
        raise DiffcoreError(f"cannot read image {str(input_path)!r}: no such file")

    def build(kind, spec, **options):
        try:
            return diffcore.create(kind, spec, **options)
        except DiffcoreError:
            raise
        except (TypeError, ValueError) as exc:  # a bad option the factory could not take
            raise DiffcoreError(f"cannot build {kind} {spec!r}: {type(exc).__name__}: {exc}") from exc

    solver_name, solver_options = parse_spec(solver_spec)
    solver = build("solver", solver_name, **solver_options)  # an unknown solver or option fails before any work
    prior = build_prior(prior_spec, device=device, dtype=dtype)
    shape = _image_shape(prior)
    if input_path is not None:
        x, source = images.read_image(input_path, shape, resize=resize), str(input_path)
    else:
        x, source = _embedded_image(prior_spec, shape)
    noise = {} if sigma_y is None else {"sigma_y": float(sigma_y)}
    operator = build("operator", operator_spec, x_shape=shape, **noise)
    if prior.accepts and prior.null_cond is not None:  # a conditional prior used without its condition
        from diffcore.priors import unconditional

        prior = unconditional(prior)

    x = x[None].to(torch.float32)
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same seed gives the same result on every device
    y = operator.measure(x.to(prior.device), generator)
    t0 = time.perf_counter()
    restored = solve(prior, operator, y, solver=solver, steps=steps, generator=generator)
    solve_seconds = time.perf_counter() - t0
    restored, y = restored.detach().cpu(), y.cpu()

    pinv = None
    if getattr(operator, "linear", False):
        try:
            pinv = operator.A_pinv(y).detach()
        except (NotImplementedError, DiffcoreError):  # a linear operator without a pseudo-inverse
            pinv = None
    y_image = y.ndim == 4 and y.shape[1] in (1, 3)
    files = {"restoration.png": images.png(restored[0]), "input.png": images.png(x[0])}
    if y_image:
        files["measurement.png"] = images.png(y[0])
    elif pinv is not None:
        files["measurement_pinv.png"] = images.png(pinv[0])
    else:
        raise DiffcoreError(f"cannot draw the measurement of {operator_spec!r}: y has shape {tuple(y.shape[1:])} and the operator has no pseudo-inverse")

    def scores(image):
        return {"psnr": images.psnr(image[0], x[0]), "ssim": images.ssim(image[0], x[0])}

    metrics = {
        "restoration": scores(restored),
        "pinv": scores(pinv) if pinv is not None else None,
        "settings": {
            "prior": prior_spec,
            "operator": operator_spec,
            "solver": solver_spec,
            "steps": steps,
            "sigma_y": float(getattr(operator, "sigma_y", 0.0)),
            "seed": seed,
            "input": source,
            "resize": resize,
            "x_shape": list(shape),
            "y_shape": list(y.shape[1:]),
            "metrics": "PSNR (dB) and SSIM (Gaussian window, sigma 1.5) against the input, data range 2 (images in [-1, 1])",
        },
        "seconds": {"solve": round(solve_seconds, 3), "total": round(time.perf_counter() - started, 3)},
    }
    files["metrics.json"] = (json.dumps(metrics, indent=2) + "\n").encode("utf-8")
    try:
        _write_folder(out, files)
    except OSError as exc:
        raise DiffcoreError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
    r, p = metrics["restoration"], metrics["pinv"]
    line = f"restoration PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}"
    if p is not None:
        line += f"; pseudo-inverse PSNR {p['psnr']:.2f} dB, SSIM {p['ssim']:.3f}"
    click.echo(f"{line}\nwrote {', '.join(files)} to {out}")
