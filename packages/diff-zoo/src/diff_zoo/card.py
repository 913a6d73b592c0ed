"""Model cards of the zoo priors, in Markdown: data and split, architecture and size, training.

``render_card(recipe, record)`` writes the card from a recipe and, once trained, the
``recipe.json`` record of the run; a training run saves it as the folder's ``README.md`` (the
Hugging Face convention), and ``diffcore zoo card NAME`` prints it. Measured figures on held-out
data are added by the evaluation step (``metrics``).

>>> from diff_zoo.recipes import RECIPES
>>> render_card(RECIPES["digits"]).splitlines()[0]
'# zoo:digits'
"""

from __future__ import annotations

import json
from typing import Any

from diff_zoo.recipes import Recipe


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def render_card(recipe: Recipe, record: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> str:
    """The model card of ``recipe`` (and of its trained run ``record``, if given) as Markdown."""
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
        f"- AdamW lr {recipe.lr} (betas {recipe.adam_betas}, weight decay {recipe.weight_decay}), {recipe.warmup} warm-up steps then {recipe.lr_schedule}; "
        f"gradient clipping {recipe.grad_clip}; EMA {recipe.ema_decay} (the EMA weights are shipped)",
        f"- label dropout {recipe.label_dropout}" if recipe.n_classes else "",
        f"- budgets: GPU {recipe.gpu.iterations} steps x batch {recipe.gpu.batch_size}; CPU {recipe.cpu.iterations} steps x batch {recipe.cpu.batch_size}",
    ]
    if record:
        lines += [
            f"- this run: {record['iterations']} steps ({record['iterations_source']} budget"
            + (", stopped early at the time limit" if record.get("stopped_early") else "")
            + f") x batch {record['batch_size']}, seed {record['seed']}, {record['train_time_s']:.0f} s of training "
            f"({record.get('iterations_per_s')} it/s) on {record['device_name']}"
            + (f" with {record['amp']} autocast" if record.get("amp") else ""),
            f"- final training loss (mean of the last {record['final_loss_steps']} steps): {record['final_loss']:.4f}",
            f"- torch {record['torch_version']}, diffusers {record['diffusers_version']}",
            f"- retrain: `diffcore zoo train {recipe.name} --out DIR --seed {record['seed']} --iterations {record['iterations']} --batch-size {record['batch_size']}`",
        ]
    else:
        lines += ["- not trained yet: `diffcore zoo train " + recipe.name + " --out DIR`"]
    lines += ["", "## Measurements on held-out data", ""]
    if metrics:
        lines += [f"- {k}: {v}" for k, v in metrics.items()]
    else:
        lines += ["Not measured yet."]
    return "\n".join(line for i, line in enumerate(lines) if line != "" or (i > 0 and lines[i - 1] != "")) + "\n"
