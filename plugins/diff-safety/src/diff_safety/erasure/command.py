"""``diffcore safety erase``: erase a concept from a prior and save the result as a fine-tuned prior."""

from __future__ import annotations

from pathlib import Path

import click

from diffcore.devices import device_options


@click.command("erase")
@click.option("--prior", "prior_spec", required=True, metavar="SPEC", help="The prior to fine-tune, e.g. zoo:digits.")
@click.option("--concept", required=True, help="What to erase: a class label (class-conditional priors) or a prompt (text-conditional).")
@click.option("--method", type=click.Choice(["esd-x", "esd-u", "esd-full", "ablation"]), default="esd-x", show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the erased prior (weights.safetensors, finetuned.json, erasure.json).",
)
@click.option("--anchor", default=None, help="Erase towards this label or prompt instead of the null condition.")
@click.option("--eta", type=float, default=1.0, show_default=True, help="ESD's negative guidance strength.")
@click.option("--steps", type=int, default=400, show_default=True)
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=None, help="Learning rate (default: 5e-2 for a class-embedding table, 1e-4 otherwise).")
@click.option("--pool", type=int, default=256, show_default=True, help="Generations of the concept (or anchor) the noisy inputs come from.")
@click.option("--train", default=None, help="Parameters to train instead of the method's: any kind of diffcore.layers.select_parameters.")
@click.option("--lora", "lora_rank", type=int, default=None, help="Train LoRA adapters of this rank on the selected attention projections.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--measure", is_flag=True, help="zoo:digits only: measure the erasure with the zoo's classifier (adds a few minutes).")
@device_options
def erase_command(prior_spec, concept, method, out, anchor, eta, steps, batch, lr, pool, train, lora_rank, seed, measure, device, dtype):
    """Fine-tune a prior so that it no longer produces a concept (ESD or concept ablation).

    The result loads as a prior by name: diffcore.create("prior", "finetuned", path=OUT).
    """
    import shutil

    from diff_safety.cli import check_out, partial_folder, publish
    from diff_safety.erasure import FORMAT, ErasureSettings, check_erasable, concept_cond, erase, save_erased, selection_for
    from diffcore.devices import build_prior
    from diffcore.errors import DiffcoreError

    check_out(out, "erasure.json", FORMAT)
    settings = ErasureSettings(
        method=method, eta=eta, steps=steps, batch=batch, lr=lr, pool=pool, pool_steps=25, train=train, lora_rank=lora_rank, seed=seed
    )
    prior = build_prior(prior_spec, device=device, dtype=dtype)
    check_erasable(prior)
    concept_cond(prior, concept)
    if anchor is not None:
        concept_cond(prior, anchor, "anchor")
    from diffcore.layers import select_parameters

    select_parameters(prior, selection_for(prior, method, train))  # a selection that matches nothing fails here, before training
    if measure and not prior_spec.startswith("zoo:digits"):
        raise DiffcoreError("--measure uses the zoo's digits classifier: it applies to zoo:digits only")
    original = None
    if measure:
        from diffcore.training import frozen_copy

        original = frozen_copy(prior)
    result = erase(prior, concept, anchor=anchor, settings=settings, progress=True)
    extra = {"prior": prior_spec}
    if measure:
        from diff_safety.erasure.evaluate import measure_digits

        figures = measure_digits(original, result.prior, int(concept))
        figures.pop("_samples")
        extra["measurement"] = figures
    partial = partial_folder(out)
    if partial.exists():
        shutil.rmtree(partial)
    try:
        save_erased(result, partial, base=prior_spec, extra=extra)
        publish(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    line = (
        f"erased {concept!r} with {method} ({result.selection}, {result.info['trained_values']} values, {result.info['steps']} steps); "
        f"load it with diffcore.create('prior', 'finetuned', path={str(out)!r})"
    )
    if measure:
        m = extra["measurement"]
        line += f"; class {concept}: {100 * m['rates_before'][int(concept)]:.0f} % -> {100 * m['rates_after'][int(concept)]:.0f} %"
    click.echo(line)
