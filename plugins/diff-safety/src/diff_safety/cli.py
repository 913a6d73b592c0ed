"""``diffcore safety``: the command group of diff-safety (``audit``, ``erase``).

Every input problem (a prior that cannot be built, a concept it cannot condition on, a dataset
that is empty or whose images are not the prior's size, a prior without a network to fine-tune)
is a one-line error before anything is written. Results are written into a hidden folder next
to ``--out`` and renamed into place when complete, so ``--out`` holds a whole result or nothing;
an existing ``--out`` is replaced only when it holds an earlier result of the same command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from diff_safety.generate import generation_task
from diffcore.devices import device_options
from diffcore.errors import DiffcoreError
from diffcore.jobs import job_option


@click.group("safety")
def safety() -> None:
    """Memorisation audits and concept erasure."""


def check_out(out: Path, marker: str, fmt: str) -> None:
    """Refuse an ``--out`` that exists and is not an earlier result (``marker`` file holding ``fmt``) of this command."""
    if not out.exists():
        if not out.parent.is_dir():
            raise DiffcoreError(f"the folder of --out does not exist: {str(out.parent)!r}")
        return
    if not out.is_dir():
        raise DiffcoreError(f"--out {str(out)!r} is a file; give a folder")
    if not any(out.iterdir()):
        return
    try:
        ok = json.loads((out / marker).read_text()).get("format") == fmt
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise DiffcoreError(f"--out {str(out)!r} exists and does not hold an earlier result of this command; choose another folder")


def partial_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def publish(partial: Path, out: Path) -> None:
    """Move the finished ``partial`` folder to ``out`` (replacing an earlier result checked by :func:`check_out`)."""
    old = out.parent / f".{out.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    partial.rename(out)
    if old.exists():
        shutil.rmtree(old)


def _ints(values) -> list[int]:
    out = []
    for item in values:
        for part in str(item).replace(",", " ").split():
            try:
                out.append(int(part))
            except ValueError:
                raise DiffcoreError(f"--label takes class indices; {part!r} is not an integer") from None
    return out


@job_option(generation_task)
@safety.command("audit")
@click.option("--prior", "prior_spec", metavar="SPEC", help="The prior to audit, e.g. zoo:digits.")
@click.option("--data", type=click.Path(path_type=Path), help="Its training set: a folder of images or a .safetensors/.npy file.")
@click.option("--n", type=int, default=1000, show_default=True, help="Generations to draw.")
@click.option("--out", type=click.Path(path_type=Path), help="Folder for the report (index.html, report.json).")
@click.option("--steps", type=int, default=50, show_default=True, help="Sampler steps per generation.")
@click.option("--sampler", default="ddim", show_default=True)
@click.option("--label", "labels", multiple=True, help="Class labels to generate (repeat or 0,3,7; default: every class).")
@click.option("--prompt", "prompts", multiple=True, help="Prompts to generate from (text-conditional priors; repeatable).")
@click.option("--unconditional", is_flag=True, help="Generate with the prior's null condition.")
@click.option("--guidance", type=float, default=1.0, show_default=True, help="Classifier-free guidance scale for labels or prompts.")
@click.option("--batch", type=int, default=64, show_default=True, help="Generations per batch (one resumable job item each).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--metric", type=click.Choice(["tiled-l2", "l2"]), default="tiled-l2", show_default=True)
@click.option("--grid", type=int, default=4, show_default=True, help="Tiles per side of the tiled L2.")
@click.option("--neighbours", type=int, default=50, show_default=True, help="n of the relative score (Carlini et al.: 50).")
@click.option("--alpha", type=float, default=0.5, show_default=True)
@click.option("--delta", type=float, default=1 / 3, show_default=True, help="Extracted when the relative score is below this.")
@click.option("--features", default="pixels", show_default=True, help="Feature space of the cosine test: pixels, zoo-digits, vision.")
@click.option(
    "--cosine-threshold",
    type=float,
    default=0.99,
    show_default=True,
    help="Replica above this cosine similarity (compare the held-out baseline in the report).",
)
@click.option("--clique-threshold", type=float, default=0.1, show_default=True, help="Tiled distance joining two generations.")
@click.option("--clique-k", type=int, default=10, show_default=True, help="Clique size that flags a condition as memorised.")
@click.option(
    "--duplicate-threshold", type=float, default=0.05, show_default=True, help="Tiled distance of near-duplicate training images."
)
@click.option("--held-out", type=click.Path(path_type=Path), help="Images not trained on: runs membership inference against them.")
@click.option(
    "--generations",
    "generations",
    type=click.Path(path_type=Path),
    help="Use the generations of an earlier '--job' run instead of generating.",
)
@click.option("--backend", type=click.Choice(["auto", "torch", "faiss"]), default="auto", show_default=True)
@device_options
def audit_command(
    prior_spec,
    data,
    n,
    out,
    steps,
    sampler,
    labels,
    prompts,
    unconditional,
    guidance,
    batch,
    seed,
    metric,
    grid,
    neighbours,
    alpha,
    delta,
    features,
    cosine_threshold,
    clique_threshold,
    clique_k,
    duplicate_threshold,
    held_out,
    generations,
    backend,
    device,
    dtype,
):
    """Generate from a prior and find the generations that copy its training data.

    With --job JOB.toml, runs only the generation as a batch job (task "safety audit"; the job's
    [options] are prior, n (per item), steps, sampler, labels, prompts, unconditional, guidance,
    device, dtype); audit its output folder afterwards with --generations.
    """
    from diff_safety.auditing import FORMAT, audit
    from diff_safety.data import load_images
    from diff_safety.extraction import Criterion
    from diff_safety.report import write_report
    from diffcore.devices import build_prior

    if data is None or out is None:
        raise click.UsageError("--data and --out are required (or --job JOB.toml)")
    if prior_spec is None and generations is None:
        raise click.UsageError("--prior is required (or --generations DIR from an earlier --job run)")
    check_out(out, "report.json", FORMAT)
    criterion = Criterion(
        metric=metric, grid=grid, n=neighbours, alpha=alpha, delta=delta, cosine_threshold=cosine_threshold, backend=backend
    )
    prior = build_prior(prior_spec, device=device, dtype=dtype) if prior_spec is not None else None
    if prior is not None:
        from diff_safety.generate import make_plan

        make_plan(prior, labels=_ints(labels), prompts=list(prompts), unconditional=unconditional, guidance=guidance)
    shape = tuple(prior.image_shape) if prior is not None else None
    train = load_images(data, shape=shape)
    held = load_images(held_out, shape=tuple(train.images.shape[1:])) if held_out is not None else None
    if generations is not None and not Path(generations).is_dir():
        raise DiffcoreError(f"--generations {str(generations)!r} is not a folder of generations")
    partial = partial_folder(out)
    partial.mkdir(exist_ok=True)
    result = audit(
        prior,
        train,
        n=n,
        steps=steps,
        sampler=sampler,
        labels=_ints(labels),
        prompts=list(prompts),
        unconditional=unconditional,
        guidance=guidance,
        batch=batch,
        seed=seed,
        criterion=criterion,
        features=features,
        clique_threshold=clique_threshold,
        clique_k=clique_k,
        duplicate_threshold=duplicate_threshold,
        held_out=held,
        prior_spec=prior_spec,
        work=None if generations is not None else partial / "generations",
        generations=generations,
        progress=True,
    )
    write_report(result, partial)
    publish(partial, out)
    s = result.summary()
    click.echo(
        f"{s['extracted_generations']} of {s['generations']} generations extracted ({100 * s['extraction_rate']:.1f} %), "
        f"{s['extracted_training_images']} training images; {s['replica_generations']} replicas; "
        f"memorised conditions: {', '.join(s['memorised_conditions']) or 'none'}; report: {out / 'index.html'}"
    )


def _erase_command():
    from diff_safety.erasure.command import erase_command

    return erase_command


safety.add_command(_erase_command(), "erase")
