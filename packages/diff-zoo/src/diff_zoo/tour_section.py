"""diff-zoo's tour section: samples of each shipped prior next to real held-out data, with its card's headline.

Priors whose weights are not shipped in this installation are listed as such, with the command
that trains them; that is not an error. Sizes stay small (a few dozen samples of 16x16 to 64x64
images at 50 DDIM steps, 20 and fewer samples with ``--quick``) so that the section takes well
under a minute on two CPU cores.
"""

from __future__ import annotations

import json
import time

import torch

from diff_zoo import NAMES


def real_images(name: str, count: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Held-out images of ``zoo:NAME`` (and their labels), cheaply: the test streams do not depend on the training set's size."""
    from diff_zoo import data

    if name == "digits":
        d = data.digits()
    elif name == "patches":
        d = data.patches(n_train=1, n_test=max(count, 64))
    elif name == "textures":
        d = data.textures(n_train_per_class=1, n_test_per_class=max(count, 16))
    else:
        d = data.phantoms(n_train=1, n_test=count)
    return d.test.images(), d.test.labels


def _metrics(folder) -> dict | None:
    path = folder / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def section(tour) -> None:
    """One picture per shipped prior (samples | held-out data), a table of the cards, and what is not shipped."""
    from diff_zoo.evaluate import GUIDANCE, draw, load_prior
    from diff_zoo.grids import LAYOUT, side_by_side
    from diff_zoo.grids import matching_real as matching
    from diff_zoo.priors import is_trained, read_record, weights_folder
    from diff_zoo.recipes import get_recipe

    steps = 20 if tour.quick else 50
    tour.text(
        "The **zoo** priors are small diffusers UNets trained by the recipes in `diff_zoo.recipes` on data that installed "
        "packages ship or that the recipe generates; they are the embedded defaults of the other plugins' demos. "
        f"Each picture shows samples ({steps} DDIM steps; conditional priors guided at scale {GUIDANCE:g}, labels in turn) "
        "on the left and real held-out images on the right; the numbers come from each prior's model card "
        "(`diffcore zoo card NAME`)."
    )
    rows, missing = [], []
    for i, name in enumerate(NAMES):
        recipe = get_recipe(name)
        folder = weights_folder(name)
        if not is_trained(folder):
            missing.append(name)
            rows.append({"prior": f"zoo:{name}", "weights": "not shipped yet", "card headline": "-"})
            continue
        nrow, count = LAYOUT[name]
        if tour.quick:
            count = nrow * 2
        start = time.perf_counter()
        prior = load_prior(name)
        scale = GUIDANCE if recipe.n_classes else 1.0
        samples = draw(prior, recipe, count, steps=steps, seed=i, scale=scale)
        seconds = time.perf_counter() - start
        real, labels = real_images(name, count)
        metrics = _metrics(folder)
        record = read_record(folder) or {}
        headline = metrics["headline"] if metrics else None
        caption = f"zoo:{name}: {count} samples in {seconds:.1f} s (left), held-out data (right). " + (
            headline["text"] + "." if headline else "Not measured yet: `diffcore zoo evaluate " + name + "`."
        )
        tour.image(name, side_by_side(samples, matching(real, labels, count, recipe.n_classes), nrow=nrow, height=360), caption=caption)
        if headline and name == "digits":  # a fraction of samples (evaluate.headline), shown in percent: 100 %, not "1"
            tour.metric(f"zoo:{name} {headline['label']}", round(100 * headline["value"], 1), unit="%")
        elif headline:
            tour.metric(f"zoo:{name} {headline['label']}", headline["value"])
        rows.append(
            {
                "prior": f"zoo:{name}",
                "weights": f"{(folder / 'unet' / 'diffusion_pytorch_model.safetensors').stat().st_size / 1e6:.1f} MB",
                "parameters": record.get("parameters"),
                "trained": f"{record.get('iterations', '?')} steps on {record.get('device_name', '?')}",
                "card headline": headline["text"] if headline else "not measured yet",
                "sampled here": f"{count} in {seconds:.1f} s ({steps} steps)",
            }
        )
    tour.table("zoo-priors", rows, caption="The zoo priors in this installation and their cards' headline figures.")
    if missing:
        tour.text(
            "Not shipped yet in this installation: "
            + ", ".join(f"`zoo:{name}`" for name in missing)
            + ". Train one with `diffcore zoo train NAME --out DIR` and load it with `diffcore.create('prior', 'zoo:NAME', path=DIR)`."
        )


__all__ = ["real_images", "section"]
