"""``diffcore zoo``: list the zoo priors, show a model card, train a recipe, measure a prior.

Heavy modules (torch's training code, diffusers, scikit-learn) are imported inside the commands.
"""

from __future__ import annotations

import click

from diff_zoo import NAMES


@click.group("zoo")
def zoo():
    """Small pretrained priors that ship with diffcore (zoo:NAME)."""


@zoo.command("list")
def list_priors():
    """The zoo priors, whether their weights are shipped, and how they were trained."""
    from rich.console import Console
    from rich.table import Table

    from diff_zoo.priors import is_trained, read_record, weights_folder
    from diff_zoo.recipes import RECIPES

    table = Table("prior", "weights", "trained", "summary")
    for name in NAMES:
        folder = weights_folder(name)
        if is_trained(folder):
            record = read_record(folder) or {}
            size = (folder / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
            trained = f"{record.get('iterations', '?')} steps on {record.get('device_name', '?')}"
            weights = f"{size / 1e6:.1f} MB"
        else:
            weights, trained = "not shipped", f"diffcore zoo train {name} --out DIR"
        table.add_row(f"zoo:{name}", weights, trained, RECIPES[name].summary)
    Console().print(table)


@zoo.command("card")
@click.argument("name")
@click.option("--path", type=click.Path(file_okay=False), default=None, help="A trained folder instead of the shipped weights.")
def card(name, path):
    """Print the model card of zoo:NAME (recipe, training record and measurements)."""
    import json
    from pathlib import Path

    from diff_zoo.card import render_card
    from diff_zoo.priors import read_record, weights_folder
    from diff_zoo.recipes import get_recipe

    recipe = get_recipe(name)
    folder = Path(path) if path is not None else weights_folder(recipe.name)
    measured = folder / "metrics.json"
    metrics = json.loads(measured.read_text()) if measured.is_file() else None
    click.echo(render_card(recipe, read_record(folder), metrics), nl=False)


@zoo.command("evaluate")
@click.argument("name")
@click.option(
    "--path", type=click.Path(file_okay=False, exists=True), default=None, help="A trained folder (default: the shipped weights)."
)
@click.option("--n", "n", default=256, show_default=True, type=click.IntRange(min=16), help="Images per compared set.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write metrics.json and the card README.md (default: the evaluated folder).",
)
@click.option(
    "--docs",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write NAME.md and NAME.png (default: docs/zoo of the source checkout, if any).",
)
@click.option("--no-docs", is_flag=True, help="Do not write the docs page.")
def evaluate(name, path, n, seed, out, docs, no_docs):
    """Measure zoo:NAME on held-out data and write its metrics.json and model card."""
    from rich.console import Console

    from diff_zoo.card import docs_dir
    from diff_zoo.evaluate import evaluate_and_write
    from diff_zoo.recipes import get_recipe

    recipe = get_recipe(name)
    console = Console(stderr=True)
    target = None if no_docs else (docs if docs is not None else docs_dir())
    metrics, written = evaluate_and_write(
        recipe.name, path, out=out, docs=target, n=n, seed=seed, log=lambda m: console.print(m, highlight=False)
    )
    click.echo(f"zoo:{recipe.name}: {metrics['headline']['text']}")
    for file in written:
        click.echo(f"  wrote {file}")


@zoo.command("train")
@click.argument("name")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write (a diffusers pipeline folder plus recipe.json and README.md).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--iterations", type=int, default=None, help="Override the recipe's budget for the device.")
@click.option("--batch-size", type=int, default=None, help="Override the recipe's batch size for the device.")
@click.option("--max-minutes", type=float, default=None, help="Cut the iteration count so that training fits in this time.")
def train(name, out, device, seed, iterations, batch_size, max_minutes):
    """Train zoo:NAME with its recipe and write it to OUT."""
    from diff_zoo.recipes import get_recipe
    from diff_zoo.train import train as run

    record = run(get_recipe(name), out, device=device, seed=seed, iterations=iterations, batch_size=batch_size, max_minutes=max_minutes)
    click.echo(
        f"zoo:{record['name']}: {record['iterations']} steps x {record['batch_size']} in {record['train_time_s']:.0f} s "
        f"on {record['device_name']}, final loss {record['final_loss']:.4f}, weights {record['weights_bytes'] / 1e6:.2f} MB -> {out}"
    )
