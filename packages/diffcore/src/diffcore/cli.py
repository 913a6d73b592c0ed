"""The ``diffcore`` command line: ``plugins``, ``available``, ``sample``, ``tour``, ``run``, and whatever
commands installed plugins add through the ``register_commands(cli)`` hook.

Errors a user can cause (a :class:`~diffcore.errors.DiffcoreError` or a usage error) end the
command with exit status 2 and one line ``error: ...`` on stderr; ``--debug`` (or
``DIFFCORE_DEBUG=1``) adds the traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
import traceback
from pathlib import Path

import click

from diffcore.devices import build_prior, device_options, speed_options
from diffcore.errors import DiffcoreError

FORMATS = (".png", ".npy", ".safetensors")


class DiffcoreGroup(click.Group):
    """The root group: loads plugin commands on demand and turns errors into one line."""

    debug = False
    _loaded_for = None  # the plugin host whose commands are added (a new host after reset() reloads them)
    _plugin_commands: frozenset = frozenset()

    def _load_plugin_commands(self) -> None:
        try:
            from diffcore.plugin_host import host

            current = host()
        except Exception as exc:  # noqa: BLE001 - plugins must never break the command line
            click.echo(f"warning: plugin commands were not loaded: {type(exc).__name__}: {exc}", err=True)
            return
        if self._loaded_for is current:
            return
        for name in self._plugin_commands:  # commands of an earlier host
            self.commands.pop(name, None)
        self._loaded_for = current
        builtins = dict(self.commands)
        try:
            current.register_commands(self)  # each plugin in its own guard; failures show in `diffcore plugins`
        except Exception as exc:  # noqa: BLE001
            click.echo(f"warning: plugin commands were not loaded: {type(exc).__name__}: {exc}", err=True)
        for name, command in builtins.items():
            if self.commands.get(name) is not command:
                self.commands[name] = command
                click.echo(f"warning: a plugin tried to replace the built-in command {name!r}; the built-in one is kept", err=True)
        self._plugin_commands = frozenset(set(self.commands) - set(builtins))

    def list_commands(self, ctx):
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        if name not in self.commands:
            self._load_plugin_commands()
        return super().get_command(ctx, name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        self.debug = os.environ.get("DIFFCORE_DEBUG", "") not in ("", "0")
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except DiffcoreError as exc:
            code = self._fail(str(exc), 2)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "", err=False)
            code = 0
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            code = self._fail(exc.format_message() + hint, 2)
        except click.ClickException as exc:
            code = self._fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            code = self._fail("aborted", 130)
        except OSError as exc:
            if exc.errno != errno.EPIPE:  # a closed pipe (`diffcore plugins --json | head`) is not an error
                raise
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def _fail(self, message: str, code: int) -> int:
        if self.debug and sys.exc_info()[0] is not None:
            click.echo(traceback.format_exc().rstrip(), err=True)
        click.echo("error: " + " ".join(str(message).split("\n")).strip(), err=True)
        return code


def _version() -> str:
    import diffcore

    return diffcore.__version__


@click.group(cls=DiffcoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
@click.version_option(_version(), "--version", prog_name="diffcore", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Put a pretrained diffusion model to work: samplers, priors, and the plugins that use them.

    Start with `diffcore tour`, which runs every installed plugin's showcase and writes an HTML
    report.
    """
    if debug:
        ctx.command.debug = True


# -- plugins and components ----------------------------------------------------------------------
@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List plugins, their versions, what each registered, and why any was skipped."""
    from diffcore.plugin_host import plugins

    infos = plugins()
    if as_json:
        click.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=True, header_style="bold")
    table.add_column("plugin", style="bold", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("registered")
    table.add_column("status")
    for info in infos:
        registered = "\n".join(f"[dim]{kind}:[/] {', '.join(names)}" for kind, names in info.registered.items()) or "[dim]nothing[/]"
        status = f"[red]skipped: {_escape(info.error)}[/]" if info.error else "[green]ok[/]"
        table.add_row(_escape(info.name), info.version or "?", registered, status)
    Console().print(table)


@cli.command("available")
@click.argument("kind")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def available_command(kind: str, as_json: bool) -> None:
    """List the components of KIND (prior, schedule, sampler, operator, solver, representation, distiller, task, tour)."""
    from diffcore.plugin_host import available
    from diffcore.registry import normalize_kind

    kind = normalize_kind(kind)
    comps = available(kind)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"name": c.name, "aliases": list(c.aliases), "summary": c.summary, "plugin": c.plugin, "options": c.options()}
                    for c in comps
                ],
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    if not comps:
        click.echo(f"no {kind}s are registered (is the plugin that provides them installed? see `diffcore plugins`)")
        return
    table = Table(header_style="bold")
    table.add_column(kind, style="bold", no_wrap=True)
    table.add_column("aliases")
    table.add_column("summary")
    table.add_column("plugin", no_wrap=True)
    for c in comps:
        table.add_row(_escape(c.name), _escape(", ".join(c.aliases)), _escape(c.summary), _escape(c.plugin))
    Console().print(table)


def _escape(text: str | None) -> str:
    from rich.markup import escape

    return escape(text or "")


# -- sample --------------------------------------------------------------------------------------
def _sampler_help() -> str:
    from diffcore.samplers import SAMPLERS

    # Built when the command line is defined, so it names diffcore's own without loading plugins.
    return f"Sampler, with options inline: {', '.join(SAMPLERS)} or a plugin's (`diffcore available sampler`), e.g. 'ddim:eta=0.5'."


def _resolve_sampler(spec: str):
    """``name[:key=value,...]`` -> (name, options), checked against the registered sampler before any work."""
    from diffcore.registry import parse_spec
    from diffcore.samplers import get_sampler

    name, options = parse_spec(spec)
    get_sampler(name, **options)
    return name, options


def _check_drawable(shape: tuple[int, ...]) -> None:
    if len(shape) == 1 and shape[0] in (1, 2):
        return
    if len(shape) == 3 and shape[0] in (1, 3):
        return
    raise DiffcoreError(
        f"cannot draw samples of shape {shape} as a PNG (it takes images (C, H, W) with C = 1 or 3, or 1-D and 2-D points); write .npy "
        "or .safetensors instead"
    )


def _scatter_png(x, prior, title: str) -> bytes:
    from diffcore.tour import require_matplotlib

    require_matplotlib()
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    pts = x.detach().to("cpu", dtype=torch.float64).numpy()
    if pts.shape[1] == 2:
        lo, hi = np.quantile(pts, 0.001, axis=0), np.quantile(pts, 0.999, axis=0)
        pad = 0.08 * float((hi - lo).max() or 1.0)
        aspect = float((hi[1] - lo[1] + 2 * pad) / (hi[0] - lo[0] + 2 * pad))
        size = (6.4, min(7.5, max(2.8, 5.6 * aspect + 1.0)))
    else:
        size = (6.4, 3.8)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    if pts.shape[1] == 1:
        ax.hist(pts[:, 0], bins=min(100, max(10, len(pts) // 10)), color="#1971c2", alpha=0.8)
        ax.set_xlabel("x")
        ax.set_ylabel("count")
    else:
        if hasattr(prior, "log_prob") and getattr(prior, "sample_shape", None) == (2,):
            gx, gy = np.meshgrid(np.linspace(lo[0] - pad, hi[0] + pad, 160), np.linspace(lo[1] - pad, hi[1] + pad, 160))
            grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
            logp = prior.log_prob(grid).reshape(gx.shape).double().numpy()
            top = float(logp.max())
            ax.contourf(gx, gy, logp, levels=np.linspace(top - 9, top, 10), cmap="Greys", alpha=0.45, extend="min")
        ax.scatter(pts[:, 0], pts[:, 1], s=max(2.0, 60 / np.sqrt(len(pts))), color="#1971c2", alpha=0.7, linewidths=0)
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(lo[1] - pad, hi[1] + pad)
        ax.set_aspect("equal")
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
    ax.set_title(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, facecolor="white")
    return buf.getvalue()


def _encode(x, fmt: str, prior, title: str, metadata: dict[str, str]) -> bytes:
    if fmt in (".npy", ".safetensors"):
        from diffcore.jobs.tasks import encode

        return encode(x, fmt[1:], metadata)
    _check_drawable(tuple(x.shape[1:]))
    if x.ndim == 4:
        from diffcore.tour import encode_png, image_grid, upscale

        return encode_png(upscale(image_grid(x), target=512, most=16))
    return _scatter_png(x, prior, title)


def _check_label(prior, label: int | None) -> None:
    """A label the prior has: one of its classes (or its null label), else a one-line error naming them."""
    names = prior.class_names
    if label is None or "labels" not in prior.accepts or names is None:  # sample() says which conditions a prior accepts
        return
    null = prior.null_cond.labels if prior.null_cond is not None and prior.null_cond.labels is not None else None
    allowed = set(range(len(names))) | ({int(null.reshape(-1)[0])} if null is not None else set())
    if label not in allowed:
        listing = ", ".join(f"{i} ({name})" if str(name) != str(i) else str(i) for i, name in enumerate(names))
        extra = f"; {int(null.reshape(-1)[0])} is the null label (unconditional)" if null is not None else ""
        raise DiffcoreError(f"--label {label} is not a class of this prior; its labels are {listing}{extra}")


@cli.command("sample")
@click.option(
    "--prior",
    "prior_spec",
    required=True,
    metavar="SPEC",
    help="A registered prior, name[:key=value,...], e.g. 'gmm:means=[[-4.0,0.0],[4.0,0.0]]'.",
)
@click.option("--n", "n", default=16, show_default=True, type=click.IntRange(min=1), help="How many samples.")
@click.option("--steps", default=50, show_default=True, type=click.IntRange(min=1), help="Sampler steps.")
@click.option("--sampler", "sampler_spec", default="ddim", show_default=True, metavar="NAME", help=_sampler_help())
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the generator: the same seed gives the same samples.")
@click.option("--label", type=int, default=None, help="Class label, for class-conditional priors.")
@click.option("--prompt", default=None, help="Text prompt, for text-conditional priors.")
@click.option(
    "--start",
    type=click.Choice(["prior", "normal"]),
    default="prior",
    show_default=True,
    help=(
        "Starting state: the prior's exact marginal where it knows one (Gaussian mixtures), else N(0, init_std^2); 'normal' always the "
        "latter."
    ),
)
@device_options
@speed_options
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file: .png (image grid or scatter plot), .npy or .safetensors.",
)
def sample_command(
    prior_spec: str,
    n: int,
    steps: int,
    sampler_spec: str,
    seed: int,
    label: int | None,
    prompt: str | None,
    start: str,
    device: str | None,
    dtype: str | None,
    compile_network: bool,
    autocast: str | None,
    channels_last: bool,
    out: Path,
) -> None:
    """Draw samples from a prior and write them to a file (atomically)."""
    import torch

    import diffcore
    from diffcore.protocols import Cond
    from diffcore.tour import write_atomic

    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise DiffcoreError(f"cannot write {out.suffix or 'files without a suffix'!r}: --out must end in {', '.join(FORMATS)}")
    folder = out.parent
    if not folder.is_dir():
        raise DiffcoreError(f"the folder of --out does not exist: {str(folder)!r}")
    sampler, options = _resolve_sampler(sampler_spec)
    prior = build_prior(prior_spec, device=device, dtype=dtype)
    if fmt == ".png" and prior.latent is None:
        _check_drawable(tuple(prior.sample_shape))
    _check_label(prior, label)
    cond = None
    if label is not None or prompt is not None:
        labels = torch.full((n,), label, dtype=torch.long) if label is not None else None
        cond = Cond(text=prompt, labels=labels)
    generator = torch.Generator().manual_seed(seed)
    speed = {"compile": compile_network, "autocast": autocast, "channels_last": channels_last}
    x = diffcore.sample(
        prior,
        n,
        steps=steps,
        sampler=sampler,
        cond=cond,
        generator=generator,
        progress=sys.stdout.isatty(),
        start=start,
        **speed,
        **options,
    ).cpu()
    metadata = {"prior": prior_spec, "sampler": sampler_spec, "steps": str(steps), "seed": str(seed), "diffcore": _version()}
    try:
        shown = prior_spec if len(prior_spec) <= 70 else prior_spec[:67] + "..."
        data = _encode(x, fmt, prior, f"{n} samples · {sampler}, {steps} steps · seed {seed}\n{shown}", metadata)
    except ImportError as exc:
        raise DiffcoreError(str(exc)) from exc
    try:
        write_atomic(out, data)
    except OSError as exc:
        raise DiffcoreError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
    click.echo(f"wrote {n} samples of shape {tuple(x.shape[1:])} to {out}")


# -- tour ----------------------------------------------------------------------------------------
@cli.command("tour")
@click.option(
    "--out",
    "out_dir",
    default="build/tour",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the report.",
)
@click.option("--only", multiple=True, metavar="SECTION", help="Run only this section (repeatable). See `diffcore available tour`.")
@click.option("--quick", is_flag=True, help="Smaller sizes, for a fast look.")
def tour_command(out_dir: Path, only: tuple[str, ...], quick: bool) -> None:
    """Run every installed plugin's showcase and write one HTML report."""
    from diffcore.tour import run_tour

    index = run_tour(out_dir, only=list(only) or None, quick=quick)
    report = json.loads((index.parent / "report.json").read_text(encoding="utf-8"))
    failed = [s["name"] for s in report["sections"] if s["status"] == "failed"]
    skipped = [s["name"] for s in report["sections"] if s["status"] == "skipped"]
    click.echo(f"tour report: {index}  ({index.resolve().as_uri()})")
    if skipped:
        click.echo(f"warning: skipped for a missing dependency: {', '.join(skipped)} (see the report)", err=True)
    if failed:
        click.echo(f"error: tour section(s) failed: {', '.join(failed)} (the report shows why)", err=True)
        raise click.exceptions.Exit(1)


# -- run (batch jobs) ----------------------------------------------------------------------------
@cli.command("run")
@click.argument("job_file", metavar="JOB.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Output folder (overrides the job file's 'out')."
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first failing item.")
@click.option("--force", is_flag=True, help="Take over an output folder holding another job's records.")
@click.pass_context
def run_command(ctx: click.Context, job_file: Path, out: Path | None, fail_fast: bool, force: bool) -> None:
    """Run a job: one task over many items, resumable, and shardable with `accelerate launch`.

    Exit status: 0 when every item is finished, 1 when some item failed, 2 for bad input
    (found before any work). See docs/scaling.md.
    """
    from diffcore.jobs import find_task, load_job, run_spec

    spec = load_job(job_file)
    if spec.task is None:
        raise DiffcoreError(f'job file {str(job_file)!r} names no task: add task = "sample" (or a plugin command that takes --job)')
    root = ctx.find_root()
    code = run_spec(spec, find_task(spec.task, root.command, root), force=force, fail_fast=fail_fast, out=out)
    if code:
        raise click.exceptions.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``diffcore``)."""
    cli.main(args=argv, prog_name="diffcore")


if __name__ == "__main__":  # pragma: no cover
    main()
