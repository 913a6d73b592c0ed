"""``diffcore zoo``: list the zoo priors, show a model card, train a recipe.

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
def card(name):
    """Print the model card of zoo:NAME."""
    from diff_zoo.card import render_card
    from diff_zoo.priors import read_record, weights_folder
    from diff_zoo.recipes import get_recipe

    recipe = get_recipe(name)
    folder = weights_folder(recipe.name)
    shipped = folder / "README.md"
    click.echo(shipped.read_text() if shipped.is_file() else render_card(recipe, read_record(folder)), nl=False)


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
