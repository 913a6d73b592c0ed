"""The model card of ``zoo:views`` (Markdown) from its training record and its measurements, and the command that measures it.

``python -m diff_3d.views.card FOLDER`` loads the prior saved in ``FOLDER``, runs
:func:`diff_3d.views.evaluate.evaluate` (with and without guidance) and
:func:`~diff_3d.views.evaluate.evaluate_stochastic`, draws the picture ``views.png`` (held-out
pairs: reference, truth, samples) and writes ``metrics.json`` and ``README.md`` there.

>>> render_card({}, {}).splitlines()[0]
'# zoo:views'
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from diff_3d.views.recipe import RECIPE

METRICS = "metrics.json"
PICTURE = "views.png"


def _row(name: str, scores: dict[str, Any] | None) -> str:
    scores = scores or {}
    return f"| {name} | {scores.get('psnr', '-')} | {scores.get('ssim', '-')} |"


def render_card(record: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The card: use, data, model, training (``record``: ``recipe.json``) and measurements (``metrics``: ``metrics.json``)."""
    r, net = RECIPE, RECIPE.network
    stochastic = metrics.get("stochastic")
    lines = [
        "# zoo:views",
        "",
        r.summary + ".",
        "",
        "```python",
        "import torch, diffcore",
        "from diff_3d.views.data import pairs",
        "from diff_3d.views.evaluate import novel_views",
        "",
        'prior = diffcore.create("prior", "zoo:views")',
        "batch = pairs(4, torch.Generator().manual_seed(1))  # reference views, relative poses, true targets",
        "views = novel_views(prior, batch.reference, batch.relative, generator=torch.Generator().manual_seed(0), steps=50)",
        "# or diffcore.sample(prior, 4, steps=50, cond=diffcore.Cond(image=batch.reference, camera=batch.relative))",
        "```",
        "",
        "## Data",
        "",
        "- procedural (`diff_3d.views.scenes`): 1 to "
        f"{r.most} solid primitives (spheres, boxes turned about z, capped cylinders) around the origin, saturated colours, "
        "Lambertian under a fixed light, white background, ray-cast exactly (2x2 rays per pixel)",
        "- pairs (`diff_3d.views.data`): each a fresh scene seen by two independent cameras on the orbit radius 2.0-2.4, "
        "elevation 0-40 degrees (uniform on the sphere), any azimuth, 50-degree field of view, 32x32; the condition is "
        "the first view and the second camera's pose relative to the first (`relative_pose`)",
        "- training and held-out pairs come from disjoint generators (`split_generator`); no scene is drawn twice",
        "",
        "## Model",
        "",
        f"- `diff_3d.views.network.ViewUNet`: a diffusers UNet2DModel (block_out_channels {tuple(net.block_out_channels)}, "
        f"{net.layers_per_block} layer(s) per block, attention at {[i for i, a in enumerate(net.attention) if a]}) on the noisy "
        "target view concatenated with the reference view (6 channels, as Zero-1-to-3 concatenates the reference latent); "
        f"the relative pose (rotation, translation / {net.translation_scale}) through a 2-layer MLP ({net.pose_hidden} units) "
        "added to the time embedding (as 3DiM embeds poses)",
        f"- noise schedule: the zoo's (DDPM linear betas 1e-4..0.02, 1000 steps), {r.prediction_type} prediction, x0 clipped to [-1, 1]",
        "- a reference of zeros is no reference: trained with reference and pose dropped together "
        f"at {r.cond_dropout:.0%}, so classifier-free guidance works",
    ]
    if record.get("parameters"):
        lines.append(f"- parameters: {record['parameters']:,}; weights stored in float16")
    lines += ["", "## Training", ""]
    if record:
        curve = record.get("loss_curve") or []
        final = curve[-1][1] if curve else "-"
        lines += [
            f"- AdamW lr {r.lr}, warm-up {r.warmup}, cosine, {r.batch} pairs per step, EMA {r.ema_decay}, gradient clipping "
            f"{r.grad_clip}, on `diffcore.training.fit` with `denoising_loss`",
            f"- {record.get('steps_done')} steps (the {r.max_minutes}-minute budget of the recipe set the count) in "
            f"{record.get('wall_minutes')} min of wall time ({record.get('cpu_minutes')} min of CPU time, on a 2-core CPU shared "
            f"with other jobs), final loss {final}; {record.get('device', '')}, seed {record.get('seed', 0)}",
        ]
    else:
        lines.append("- not trained yet: `python -m diff_3d.views.train OUT`")
    lines += ["", "## Measurements", ""]
    main = metrics.get("guidance_1") or {}
    if main:
        lines += [
            f"{main['pairs']} held-out pairs (scenes and cameras training never drew), DDIM {main['steps']} steps (eta 0), seed 0. "
            "PSNR (dB, on [0, 1]) and SSIM (Wang et al. 2004, 11-tap Gaussian window) of the novel view against the "
            "renderer's ground truth.",
            "",
            "| novel view | PSNR | SSIM |",
            "|---|---:|---:|",
            _row("zoo:views", main.get("model")),
        ]
        if main.get("model_mean_of_draws"):
            lines.append(_row(f"zoo:views, mean of {main['model_mean_of_draws']['draws']} draws", main["model_mean_of_draws"]))
        for key, value in metrics.items():
            if key.startswith("guidance_") and key != "guidance_1":
                lines.append(_row(f"zoo:views, guidance {value['guidance']}", value.get("model")))
        lines += [
            _row("baseline: copy the reference view", main.get("copy")),
            _row("baseline: the background alone", main.get("background")),
            "",
        ]
    if stochastic:
        lines += [
            f"3DiM's stochastic conditioning (`diff_3d.views.sampler`): {stochastic['scenes']} held-out scenes, "
            f"{stochastic['given_views']} given views and one new view each, DDIM {stochastic['steps']} steps "
            f"(eta {stochastic['eta']}):",
            "",
            "| new view | PSNR | SSIM |",
            "|---|---:|---:|",
            _row(f"conditioned on all {stochastic['given_views']} views (stochastic)", stochastic.get("stochastic")),
            _row("conditioned on the first view only", stochastic.get("first_view_only")),
            _row("baseline: copy the first view", stochastic.get("copy_first_view")),
            "",
        ]
    if main and stochastic:
        model, copy = main["model"], main["copy"]
        mean = main.get("model_mean_of_draws") or model
        lines += [
            "Reading the numbers: one draw scores "
            f"{model['psnr']} dB against {copy['psnr']} dB for copying the reference, and the mean of "
            f"{mean.get('draws', 1)} draws {mean['psnr']} dB (SSIM {mean['ssim']} against {copy['ssim']}): PSNR rewards the "
            "posterior mean over any one sample, which must commit to a shape where the reference leaves it open. "
            f"With two given views, stochastic conditioning scores {stochastic['stochastic']['psnr']} dB against "
            f"{stochastic['first_view_only']['psnr']} dB for the first view alone.",
            "",
        ]
    if metrics.get("seconds_per_view"):
        lines.append(f"- sampling time: {metrics['seconds_per_view']} s per 32x32 view at 50 steps (batch 32, 1 thread).")
    if main:
        lines += [
            "",
            f"![held-out pairs: reference, truth, samples]({PICTURE})",
            "",
            "Rows: reference view, true target view, zoo:views (guidance 1), zoo:views (guidance 3); one held-out pair per column.",
        ]
    return "\n".join(lines).rstrip() + "\n"


def picture(prior, folder, *, n: int = 8, seed: int = 0) -> Path:
    """``views.png``: ``n`` held-out pairs, rows reference / truth / sample / guided sample, 2x upscaled."""
    import torch
    from PIL import Image

    from diff_3d.views.data import pairs, split_generator
    from diff_3d.views.evaluate import novel_views

    data = pairs(n, split_generator(seed, "held-out"))
    g = torch.Generator().manual_seed(seed)
    rows = [data.reference, data.target]
    rows += [novel_views(prior, data.reference, data.relative, generator=g, steps=50, guidance=s).clamp(-1, 1) for s in (1.0, 3.0)]
    grid = torch.cat([torch.cat(list(row), dim=-1) for row in rows], dim=-2)
    pixels = ((grid + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(pixels).resize((pixels.shape[1] * 2, pixels.shape[0] * 2), Image.Resampling.NEAREST)
    path = Path(folder) / PICTURE
    image.save(path)
    return path


def measure(folder) -> dict:
    """Measure the prior in ``folder`` and write ``metrics.json``, ``views.png`` and ``README.md`` there."""
    import torch

    from diff_3d.views.evaluate import evaluate, evaluate_stochastic
    from diff_3d.views.prior import load_view_prior

    folder = Path(folder)
    prior = load_view_prior(folder)
    metrics: dict[str, Any] = {}
    start = time.time()
    metrics["guidance_1"] = evaluate(prior, n=64, steps=50, guidance=1.0, draws=2)
    metrics["seconds_per_view"] = round(metrics["guidance_1"]["seconds"] / (64 * 2), 3)
    metrics["guidance_3"] = evaluate(prior, n=64, steps=50, guidance=3.0)
    metrics["stochastic"] = evaluate_stochastic(prior, n=16, views=2, steps=50)
    metrics["threads"] = torch.get_num_threads()
    metrics["minutes"] = round((time.time() - start) / 60, 1)
    (folder / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    picture(prior, folder)
    record = json.loads((folder / "recipe.json").read_text()) if (folder / "recipe.json").is_file() else {}
    record.setdefault("parameters", sum(p.numel() for p in prior.network.parameters()))
    (folder / "README.md").write_text(render_card(record, metrics))
    return metrics


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1]), indent=2))
