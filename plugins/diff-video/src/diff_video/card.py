"""The model card of ``zoo:moving-digits`` (Markdown), from its training record and its measurements.

>>> render_card({}).splitlines()[0]
'# zoo:moving-digits'
"""

from __future__ import annotations

from typing import Any

from diff_video.recipe import RECIPE


def _row(name: str, values: dict[str, Any], columns) -> str:
    return "| " + name + " | " + " | ".join("-" if values.get(c) is None else str(values[c]) for c in columns) + " |"


def render_card(record: dict[str, Any], metrics: dict[str, Any] | None = None) -> str:
    """The card as Markdown: use, data, model, training (``record``, ``recipe.json``) and measurements (``metrics``)."""
    r = RECIPE
    lines = [
        "# zoo:moving-digits",
        "",
        r.summary + ".",
        "",
        "```python",
        "import torch, diffcore",
        "",
        'prior = diffcore.create("prior", "zoo:moving-digits")  # 8 frames; frames=16 for longer clips',
        "labels = torch.arange(4)",
        "clips = diffcore.sample(prior, 4, steps=50, cond=diffcore.Cond(labels=labels), generator=torch.Generator().manual_seed(0))",
        "# clips: (4, 8, 1, 32, 32) in [-1, 1]; diffcore video generate --prior zoo:moving-digits --label 3 --out out/",
        "```",
        "",
        "## Data",
        "",
        f"- procedural ({'`diff_video.data.moving_digits`'}): one 16x16 scikit-learn digit (the zoo's digits, 8x8 upsampled) on a "
        f"{r.size}x{r.size} dark canvas, starting at a uniform integer position, constant integer velocity with components in "
        f"-{r.speed}..{r.speed} (not both 0), bouncing off the borders",
        "- training clips use the digits of the zoo's training split, held-out clips those of its test split",
        f"- labels: the digit's class 0-9; label {r.n_classes} is the null class (dropped at {r.label_dropout:.0%} in training)",
        "",
        "## Model",
        "",
        f"- spatial: the `{r.base}` UNet2DModel (block_out_channels (32, 64, 64), 2 layers per block, attention at the lowest "
        f"level and in the middle), fine-tuned at {r.size}x{r.size}",
        f"- temporal (`diff_video.inflate.inflate`): a temporal convolution ({r.inflation.kernel} frames) after every ResNet block "
        f"and temporal attention (heads of {r.inflation.head_dim} channels, sinusoidal frame positions up to "
        f"{r.inflation.max_frames} frames) after every spatial attention layer, all zero-initialised",
        "- noise schedule: the zoo's (DDPM linear betas 1e-4..0.02, 1000 steps, epsilon prediction, x0 clipped by samplers)",
    ]
    params = record.get("parameters") or {}
    if params:
        lines.append(f"- parameters: {params['spatial']:,} spatial, {params['temporal']:,} temporal; weights stored in {r.weights_dtype}")
    lines += ["", "## Training", ""]
    stages = record.get("stages") or {}
    for name, stage in (("image", r.image), ("temporal", r.temporal)):
        done = stages.get(name, {})
        what = (
            "all parameters, single frames"
            if name == "image"
            else f"temporal layers only, clips of {' and '.join(map(str, r.frames))} frames in turn"
        )
        line = (
            f"- {name} stage ({what}): AdamW lr {stage.lr}, warm-up {stage.warmup}, cosine, {stage.batch_frames} frames per step, "
            f"EMA {stage.ema_decay}, gradient clipping {r.grad_clip}"
        )
        if done:
            line += (
                f"; {done['steps']} steps in {done['train_time_s'] / 60:.1f} min ({done['cpu_time_s'] / 60:.1f} min of CPU time), "
                f"final loss {done['final_loss']}"
            )
        lines.append(line)
    if record:
        cpu = sum(s.get("cpu_time_s", 0) for s in stages.values())
        lines.append(
            f"- machine: {record.get('device_name')}, torch {record.get('torch_version')}; {cpu / 60:.1f} min of CPU time in all "
            f"(wall time {record.get('wall_time_s', 0) / 60:.1f} min on a CPU shared with other jobs), seed {record.get('seed')}"
        )
    if metrics:
        p = metrics["protocol"]
        figures = metrics["figures"]
        columns = ["frame accuracy", "clip accuracy", "class consistency", "mean speed", "mean acceleration", "frechet (clip statistics)"]
        lines += [
            "",
            "## Measurements",
            "",
            f"{p['n']} clips of {p['frames']} frames per set, labels `i % 10` (the unconditional rows: the null label), "
            f"DDIM {p['steps']} steps (eta {p['eta']}), seed {p['seed']}, no classifier-free guidance. The image-only baseline is "
            "the prior's own image model on each frame alone (same labels and seeds). Each frame's digit is the 16x16 window "
            "with the most ink (ties: the one nearest the ink's centroid); the zoo's digit classifier labels it.",
            "",
            "| clips | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        lines += [_row(name, values, columns) for name, values in figures.items()]
        lines += [
            "",
            "- frame accuracy: frames classified as the clip's label; clip accuracy: clips whose majority class is the label;",
            "  class consistency: frames of the clip's majority class (a digit keeps its class). With a label every frame of the",
            "  baseline is drawn for the same class; without one (the unconditional rows) only temporal layers can keep it;",
            "- mean speed and mean acceleration of the digit's ink centroid, pixels per frame (real clips: constant velocity between "
            "bounces);",
            f"- frechet: Frechet distance of the clip statistics ({', '.join(metrics['clip_features'])}), each divided by its spread "
            "over the held-out clips, to the held-out clips; the training clips' distance is the floor that sampling alone sets.",
            f"- sampling time: {metrics['timing']['seconds_per_clip']} s per clip of {p['frames']} frames at {p['steps']} steps "
            f"({metrics['timing']['threads']} thread(s)).",
        ]
    return "\n".join(lines) + "\n"


__all__ = ["render_card"]
