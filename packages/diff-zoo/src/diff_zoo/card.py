"""Model cards of the zoo priors, in Markdown: data and split, architecture and size, training.

``render_card(recipe, record, metrics)`` writes the card from a recipe, the ``recipe.json``
record of the training run and the ``metrics.json`` of its evaluation (:mod:`diff_zoo.evaluate`);
a training run saves it as the folder's ``README.md`` (the Hugging Face convention), the
evaluation rewrites it with the measurements and writes ``docs/zoo/NAME.md`` in a source
checkout, and ``diffcore zoo card NAME`` prints it.

>>> from diff_zoo.recipes import RECIPES
>>> render_card(RECIPES["digits"]).splitlines()[0]
'# zoo:digits'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diff_zoo.recipes import Recipe


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def render_card(
    recipe: Recipe, record: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None, image: str | None = None
) -> str:
    """The model card of ``recipe`` (and of its trained run ``record`` and its ``metrics``, if given) as Markdown.

    ``image``: a picture of samples next to real data to show at the top of the measurements.
    """
    u = recipe.unet
    cond = (
        f"class-conditional on {recipe.n_classes} classes; label {recipe.n_classes} is the null class (classifier-free guidance)"
        if recipe.n_classes
        else "unconditional"
    )
    lines = [
        f"# zoo:{recipe.name}",
        "",
        recipe.summary + ".",
        "",
        "```python",
        "import torch, diffcore",
        f'prior = diffcore.create("prior", "zoo:{recipe.name}")',
    ]
    if recipe.n_classes:
        lines += [
            "labels = torch.arange(16) % " + str(recipe.n_classes),
            "guided = diffcore.priors.Guided(prior, 2.0, diffcore.Cond(labels=labels),",
            f"                                diffcore.Cond(labels=torch.full((16,), {recipe.n_classes})))",
            "x = diffcore.sample(guided, 16, steps=50, generator=torch.Generator().manual_seed(0))",
        ]
    else:
        lines += ["x = diffcore.sample(prior, 16, steps=50, generator=torch.Generator().manual_seed(0))"]
    lines += ["```", "", "## Data", ""]
    info = (record or {}).get("data") or {}
    if info:
        for key, value in info.items():
            if key.endswith("_indices"):
                value = f"{len(value)} indices (in recipe.json)"
            lines.append(f"- {key.replace('_', ' ')}: {value if isinstance(value, str) else json.dumps(value)}")
    else:
        lines.append(f"- builder: `diff_zoo.data.{recipe.data}` (see its docstring)")
    flips = ", ".join(f for f, on in (("horizontal flips", recipe.hflip), ("vertical flips", recipe.vflip)) if on) or "none"
    lines += [f"- augmentation: {flips}", f"- notes: {recipe.notes}" if recipe.notes else "", ""]
    lines += [
        "## Model",
        "",
        f"- diffusers `UNet2DModel`, {u.channels} channel(s), trained at {u.sample_size}x{u.sample_size}, {cond}",
        f"- block_out_channels {tuple(u.block_out_channels)}, layers_per_block {u.layers_per_block}, "
        f"attention per level {tuple(u.attention or (False,) * len(u.block_out_channels))}, mid-block attention {u.mid_attention}"
        + ("; fully convolutional" if u.fully_convolutional else ""),
        f"- noise schedule: DDPM {recipe.schedule.beta_schedule} betas {recipe.schedule.beta_start}..{recipe.schedule.beta_end}, "
        f"{recipe.schedule.num_train_timesteps} steps, {recipe.schedule.prediction_type} prediction; saved as a DDIMScheduler config",
    ]
    if record:
        lines += [
            f"- parameters: {record.get('parameters'):,}; weights file {_fmt_bytes(record.get('weights_bytes'))} "
            f"(stored as {record.get('weights_dtype')}, loaded as float32)",
        ]
    lines += ["", "## Training", ""]
    lines += [
        f"- AdamW lr {recipe.lr} (betas {recipe.adam_betas}, weight decay {recipe.weight_decay}), {recipe.warmup} warm-up steps then "
        f"{recipe.lr_schedule}; "
        f"gradient clipping {recipe.grad_clip}; EMA {recipe.ema_decay} (the EMA weights are shipped)",
        f"- label dropout {recipe.label_dropout}" if recipe.n_classes else "",
        f"- budgets: GPU {recipe.gpu.iterations} steps x batch {recipe.gpu.batch_size}; CPU {recipe.cpu.iterations} steps x batch "
        f"{recipe.cpu.batch_size}",
    ]
    if record:
        lines += [
            f"- this run: {record['iterations']} steps ({record['iterations_source']} budget"
            + (", stopped early at the time limit" if record.get("stopped_early") else "")
            + f") x batch {record['batch_size']}, seed {record['seed']}, {record['train_time_s']:.0f} s of training "
            f"({record.get('iterations_per_s')} it/s) on {record['device_name']}"
            + (f" with {record['amp']} autocast" if record.get("amp") else ""),
            *([f"- note: {record['note']}"] if record.get("note") else []),
            f"- final training loss (mean of the last {record['final_loss_steps']} steps): {record['final_loss']:.4f}",
            f"- torch {record['torch_version']}, diffusers {record['diffusers_version']}",
            f"- retrain: `diffcore zoo train {recipe.name} --out DIR --seed {record['seed']} --iterations {record['iterations']} "
            f"--batch-size {record['batch_size']}`",
        ]
    else:
        lines += ["- not trained yet: `diffcore zoo train " + recipe.name + " --out DIR`"]
    lines += ["", "## Measurements on held-out data", ""]
    if metrics:
        lines += render_measurements(metrics, image=image)
    else:
        lines += [f"Not measured yet: `diffcore zoo evaluate {recipe.name}`."]
    return "\n".join(line for i, line in enumerate(lines) if line != "" or (i > 0 and lines[i - 1] != "")) + "\n"


def _nn(summary: dict[str, float] | None) -> str:
    return "-" if not summary else f"{summary['min']:.3f} / {summary['p01']:.3f} / {summary['median']:.3f}"


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _flip_note(flips) -> str:
    if not flips:
        return ""
    which = " and ".join({"h": "horizontally", "v": "vertically"}[f] for f in flips)
    return f", training images mirrored {which} included (the model trained on such flips)"


def render_measurements(metrics: dict[str, Any], image: str | None = None) -> list[str]:
    """The card's measurement section (Markdown lines) from a ``metrics.json`` dict."""
    p, f, t = metrics["protocol"], metrics["figures"], metrics["timing"]
    name = metrics["name"]
    lines = [f"![samples (left) next to held-out data (right)]({image})", ""] if image else []
    lines += [
        f"**{metrics['headline']['text']}.**",
        "",
        f"Each compared set has {p['n']} images; the held-out set has {metrics['data']['held_out_images']}. Samples: diffcore's "
        f"`{p['sampler']}` sampler, {p['steps']} steps, eta {p['eta']:g}, "
        f"batches of {p['batch']} seeded {p['seed']}, {p['seed']} + 1, ..."
        + (
            f"; labels {p['labels']}; guided = classifier-free guidance at scale {p['guidance_scale']:g}, unguided = the plain "
            "conditional prior"
            if name == "digits"
            else f"; labels {p['labels']}, without guidance (the plain conditional prior)"
            if p.get("labels")
            else ""
        )
        + f". Held-out data: {metrics['data']['held_out']}.",
        "",
    ]
    nn_head = "nearest training image: min / 1% / median"
    if name == "digits":
        c = metrics["classifier"]
        lines += [
            f"Classifier: {c['model']}, trained on the real training split; {c['test_accuracy']:.1%} accuracy on the real test split. "
            f"Frechet distance in its feature space ({c['features']}), to the real test split.",
            "",
            f"| set | labelled as their class | Frechet distance to test | {nn_head} |",
            "|---|---|---|---|",
            f"| samples, unguided | {_pct(f['class_accuracy_unguided'])} | {_num(f['frechet_unguided'])} | "
            f"{_nn(f.get('nearest_unguided'))} |",
            f"| samples, guided (scale {p['guidance_scale']:g}) | {_pct(f['class_accuracy_guided'])} | {_num(f['frechet_guided'])} | "
            f"{_nn(f.get('nearest_guided'))} |",
            f"| real training images | - | {_num(f['frechet_train_vs_held_out'])} | - |",
            f"| real test images (memorisation baseline) | {_pct(c['test_accuracy'])} | - | {_nn(f.get('nearest_held_out'))} |",
        ]
    else:
        feats = metrics["features"]
        lines += [
            f"Frechet distance between the image statistics of two sets: {feats['description']} "
            f'({", ".join(feats["names"])}). "Other training images" are training images outside the compared set.',
            "",
            f"| set | Frechet distance to held-out data | to other training images | {nn_head} |",
            "|---|---|---|---|",
            f"| diffusion samples | {_num(f['frechet_held_out'])} | {_num(f.get('frechet_train'))} | {_nn(f.get('nearest_unguided'))} |",
            f"| Gaussian fitted to the training data | {_num(f['frechet_gaussian_vs_held_out'])} | "
            f"{_num(f.get('frechet_gaussian_vs_train'))} | - |",
            f"| real training images | {_num(f['frechet_train_vs_held_out'])} | {_num(f.get('frechet_train_vs_train'))} | - |",
            f"| held-out images (memorisation baseline) | - | - | {_nn(f.get('nearest_held_out'))} |",
        ]
    lines += [
        "",
        "Nearest-neighbour distances are root-mean-square pixel differences (images in [-1, 1]) to the closest training image"
        + (_flip_note(metrics["data"].get("flips") or ()))
        + "; samples much closer to the training set than held-out images are would be copies.",
        "",
    ]
    if t.get("seconds") is not None:
        lines.append(
            f"- sampling time: {t['seconds']:.2f} s for {t['samples']} samples at {t['steps']} DDIM steps"
            + (" (guided: two network evaluations per step)" if t["guided"] else "")
            + f" on {t['device_name']}"
        )
    check = metrics.get("check")
    if check:
        cp = check["protocol"]
        shown = {k: (_nn(v) if isinstance(v, dict) else _num(v)) for k, v in check["figures"].items()}
        lines.append(
            f"- cheap check, repeated by the tests: {cp['n']} samples, {cp['steps']} steps, seed {cp['seed']}: "
            + ", ".join(f"{k} {v}" for k, v in shown.items())
        )
    versions = metrics.get("versions", {})
    lines.append(
        f"- measured on the weights with SHA-256 `{metrics['weights_sha256'][:16]}...` with diff-zoo {versions.get('diff_zoo')}, "
        f"torch {versions.get('torch')}, in {metrics.get('evaluation_seconds')} s: `diffcore zoo evaluate {name}`"
    )
    return lines


def docs_dir() -> Path | None:
    """``docs/zoo`` of the source checkout this package runs from, or None for an installed package."""
    root = Path(__file__).resolve().parents[4]
    if (root / "packages" / "diff-zoo").is_dir() and (root / "docs").is_dir():
        return root / "docs" / "zoo"
    return None


def write_cards(recipe: Recipe, record: dict[str, Any] | None, metrics: dict[str, Any], out, *, docs=None, picture=None) -> list[Path]:
    """Write ``metrics.json`` and the card ``README.md`` to ``out``, and ``NAME.md`` (with ``NAME.png``) to ``docs``.

    ``picture`` is a uint8 (H, W, 3) array of samples next to real data (:mod:`diff_zoo.grids`);
    it goes to the docs only (the weights folder stays small). Files are written atomically.
    """
    from diffcore.tour import encode_png, write_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n"),
        write_atomic(out / "README.md", render_card(recipe, record, metrics)),
    ]
    if docs is not None:
        docs = Path(docs)
        docs.mkdir(parents=True, exist_ok=True)
        image = None
        if picture is not None:
            try:
                written.append(write_atomic(docs / f"{recipe.name}.png", encode_png(picture)))
                image = f"{recipe.name}.png"
            except ImportError:  # no matplotlib: the card without its picture
                pass
        written.append(write_atomic(docs / f"{recipe.name}.md", render_card(recipe, record, metrics, image=image)))
    return written
