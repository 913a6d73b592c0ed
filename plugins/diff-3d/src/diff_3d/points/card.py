"""The model card of ``zoo:shapes`` (Markdown), from its training record (``recipe.json``) and measurements (``metrics.json``).

>>> render_card({}).splitlines()[0]
'# zoo:shapes'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diff_3d.points.recipe import RECIPE

COLUMNS = ("mmd-cd", "cov-cd", "1-nna-cd", "mmd-emd", "cov-emd", "1-nna-emd", "class match")


def _cell(value) -> str:
    return "-" if value is None else f"{value:g}"


def render_card(record: dict[str, Any], metrics: dict[str, Any] | None = None) -> str:
    """The card as Markdown: use, data, model, training (``record``) and measurements (``metrics``)."""
    r = RECIPE
    lines = [
        "# zoo:shapes",
        "",
        r.summary + ".",
        "",
        "```python",
        "import torch, diffcore",
        "",
        'prior = diffcore.create("prior", "zoo:shapes")  # 512 points, as trained; points=N for another count',
        "clouds = diffcore.sample(prior, 5, steps=100, sampler='ddpm', cond=diffcore.Cond(labels=torch.arange(5)),",
        "                         generator=torch.Generator().manual_seed(0))  # (5, 512, 3): a sphere, box, torus, cylinder, cone",
        "# diffcore 3d points generate --label torus --out out/ ; diffcore 3d points complete --partial half.ply --label box --out out/",
        "```",
        "",
        "## Data",
        "",
        f"- procedural (`diff_3d.points.shapes`), fresh every step: {r.points} points uniform by area on the surface of a "
        "sphere (radius 0.5-1), box (half-sides 0.3-0.7), torus (radii 0.5-0.75 and 0.12-0.3), closed cylinder (radius 0.3-0.8, "
        "half-height 0.3-1) or closed cone (base radius 0.4-1, height 0.8-2), centred, z up, turned about z at random, inside [-1, 1]^3",
        f"- labels: {', '.join(f'{i} {name}' for i, name in enumerate(r.classes))}; label {len(r.classes)} is the null class "
        f"(labels dropped to it at {r.label_dropout:.0%} in training, so the prior also generates without a class)",
        "",
        "## Model",
        "",
        f"- `diff_3d.points.network.PointVoxelNet`: {r.blocks} residual point-voxel blocks (Zhou et al. 2021, PVD; Liu et al. 2019, "
        f"PVCNN) of {r.width} channels, each a voxel branch ({r.resolution}^3 grid of {r.voxel_width} channels, two 3x3x3 "
        "convolutions, trilinear read-back), a point MLP and a global max feature; sinusoidal time and label embeddings",
        "- noise schedule: PVD's (DDPM linear betas 1e-4..0.02, 1000 steps), epsilon prediction",
    ]
    if record.get("parameters"):
        lines.append(
            f"- parameters: {record['parameters']:,}; weights stored in {r.weights_dtype} ({record.get('weights_bytes', 0) / 1e6:.2f} MB)"
        )
    lines += ["", "## Training", ""]
    line = (
        f"- `python -m diff_3d.points.train` on `diffcore.training.fit`: AdamW lr {r.lr}, warm-up {r.warmup}, cosine, batch {r.batch}, "
        f"EMA {r.ema_decay} (the EMA weights are shipped), gradient clipping {r.grad_clip}"
    )
    if record:
        line += (
            f"; {record['steps']} steps (the recipe's {r.iterations}, cut by a {record.get('max_minutes')}-minute budget)"
            if record.get("max_minutes") and record["steps"] < r.iterations
            else f"; {record['steps']} steps"
        )
        line += f", final loss {record.get('final_loss')}"
    lines.append(line)
    if record:
        lines.append(
            f"- machine: {record.get('device_name')}, torch {record.get('torch_version')}; {record.get('cpu_time_s', 0) / 60:.1f} min of "
            f"CPU time, {record.get('wall_time_s', 0) / 60:.1f} min of wall time on a CPU shared with other jobs; seed {record.get('seed')}"
        )
    if metrics:
        p = metrics["protocol"]
        gen, comp = metrics["generation"], metrics["completion"]
        lines += [
            "",
            "## Measurements",
            "",
            f"Generation (`python -m diff_3d.points.evaluate`): {p['per_class']} clouds per class with their label, {p['sampler']} "
            f"with {p['steps']} steps, {p['points']} points, against {p['per_class']} held-out shapes per class (shapes the "
            "training never drew); MMD, COV and 1-NNA as PointFlow, PVD and LION compute them, under the Chamfer distance (CD, "
            "squared, point-cloud-utils) and the exact EMD (POT). A second held-out set in place of the generated clouds is the "
            "floor at this sample size. Class match: the share of generated clouds whose nearest held-out shape has the class asked for.",
            "",
            "| clouds | " + " | ".join(COLUMNS) + " |",
            "|---" * (len(COLUMNS) + 1) + "|",
        ]
        for name in ("generated", "held-out (floor)"):
            lines.append(f"| {name} | " + " | ".join(_cell(gen[name].get(c)) for c in COLUMNS) + " |")
        lines += [
            "",
            f"{gen['seconds_per_cloud']} s per cloud on this CPU. MMD: lower is better, COV: higher, 1-NNA: 0.5 is ideal.",
            "",
            f"Completion by replacement ({p['completion_per_class']} held-out shapes per class, each cut in half by a random plane "
            "through its centre, completed to the whole with its label): mean distance to the whole shape.",
            "",
            "| cloud | CD | EMD |",
            "|---|---|---|",
        ]
        for name in ("completed", "half alone"):
            lines.append(f"| {name} | {_cell(comp[name]['cd'])} | {_cell(comp[name]['emd'])} |")
        lines += [
            "",
            f"{comp['seconds_per_cloud']} s per completion. 'half alone' is the known half resampled to {p['points']} points.",
            "",
            "![one generated cloud per class, two sides](samples.png)",
            "",
            "![completions: the known half in orange](completion.png)",
        ]
    lines += [
        "",
        "## Limits",
        "",
        "- five primitive families in one size range; nothing here is ShapeNet, and the figures are not comparable with PVD's",
        "- completion uses the generation prior by replacement, not a model trained for completion as PVD's is",
        "- a short training on a shared CPU (the steps above): samples are noisier than the shapes, some barely take their class's "
        "form, as the gap between the generated row and the floor shows (the recipe asks for 4000 steps; a longer run was not measured)",
        "",
    ]
    return "\n".join(lines)


def write_card(folder) -> Path:
    """``README.md`` in ``folder`` from its ``recipe.json`` and ``metrics.json`` (what exists of them)."""
    folder = Path(folder)
    read = {name: json.loads((folder / name).read_text()) if (folder / name).is_file() else {} for name in ("recipe.json", "metrics.json")}
    path = folder / "README.md"
    path.write_text(render_card(read["recipe.json"], read["metrics.json"] or None))
    return path


if __name__ == "__main__":
    import sys

    from diff_3d.points.zoo import weights_folder

    print(write_card(sys.argv[1] if len(sys.argv) > 1 else weights_folder()))


__all__ = ["render_card", "write_card"]
