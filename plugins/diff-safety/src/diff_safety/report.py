"""The audit's report: ``report.json`` and ``index.html`` with extracted images beside their training matches.

:func:`write_report` writes into a folder: ``report.json`` (:meth:`AuditResult.as_dict`),
``index.html`` (the summary, a histogram of the relative scores, the extracted generations each
beside its nearest training image, the replicas, the clique test per condition, the largest
duplicate groups and the membership inference), ``pairs/`` (one PNG per extracted generation:
generation | training match) and ``scores.png``. Pictures need matplotlib (``diffcore[tour]``).
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import torch

from diffcore.tour import encode_png, image_grid, upscale, write_atomic

SHOWN = 64  # extracted pairs drawn in the HTML page (all are listed in report.json)


def _pair_png(generated: torch.Tensor, match: torch.Tensor) -> bytes:
    return encode_png(upscale(image_grid(torch.stack([generated, match]), nrow=2), target=192))


def _scores_png(scores: torch.Tensor, delta: float) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 2.8), layout="constrained")
    ax = fig.subplots()
    ax.hist(scores.clamp(max=3.0).numpy(), bins=60, color="#4a6fa5")
    ax.axvline(delta, color="#b03030", linestyle="--", label=f"delta = {delta:.3g}")
    ax.set_xlabel("relative score d1 / (alpha mean d1..dn)  (below delta: extracted)")
    ax.set_ylabel("generations")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, facecolor="white")
    return buf.getvalue()


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(result, folder) -> Path:
    """Write the report of ``result`` (an :class:`~diff_safety.auditing.AuditResult`) into ``folder``; returns ``index.html``."""
    folder = Path(folder)
    (folder / "pairs").mkdir(parents=True, exist_ok=True)
    data = result.as_dict()
    write_atomic(folder / "report.json", json.dumps(data, indent=2) + "\n")
    ex = result.extractions
    figures = []
    if ex.score.numel():
        write_atomic(folder / "scores.png", _scores_png(ex.score, ex.criterion.delta))
        figures.append('<img src="scores.png" alt="histogram of relative scores">')
    cards = []
    for rank, i in enumerate(result.extracted()[:SHOWN]):
        j = int(ex.nearest[i])
        name = f"pairs/extracted-{rank:04d}.png"
        write_atomic(folder / name, _pair_png(result.generated[i], result.train.images[j]))
        row = data["extracted"][rank]
        caption = (
            f"{row['generation']} ({row['condition']}) | {row['training_image']}<br>score {row['score']:.3f}, distance "
            f"{row['distance']:.3f}"
        )
        cards.append(f'<figure><img src="{name}" alt="generation and training match"><figcaption>{caption}</figcaption></figure>')
    summary = data["summary"]
    crit = ex.criterion
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>diff-safety memorisation audit</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}figure{display:inline-block;margin:6px;font-size:12px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}</style></head><body>",
        "<h1>Memorisation audit</h1>",
        f"<p>Prior <code>{html.escape(str(data['settings'].get('prior')))}</code>, training data "
        f"<code>{html.escape(str(data['settings'].get('data')))}</code>.</p>",
        _table([summary]),
        f"<p>Extraction test: Carlini et al. (2023), {html.escape(crit.metric)} distance (grid {crit.grid}, quantile {crit.quantile}), "
        f"relative score d1 / (alpha mean of the {crit.n} nearest), alpha {crit.alpha}, extracted below delta = {crit.delta:.4g}. "
        f"Replicas: cosine similarity above {crit.cosine_threshold} in the {html.escape(ex.feature_space)} feature space.</p>",
        *figures,
        f"<h2>Extracted generations ({summary['extracted_generations']}; {min(SHOWN, summary['extracted_generations'])} shown): "
        "generation | nearest training image</h2>",
        "".join(cards) or "<p>none</p>",
        f"<h2>Replicas ({summary['replica_generations']})</h2>",
        _table(data["replicas"][:SHOWN]),
        "<h2>Clique test per condition</h2>",
        _table(data["cliques"]),
        f"<h2>Duplicates in the training set ({data['duplicates']['groups']} groups)</h2>",
        _table([{"size": g["size"], "indices": ", ".join(map(str, g["indices"]))} for g in data["duplicates"]["largest"]]),
        "<h2>Held-out baseline (both tests on images no model saw: their false-positive rates)</h2>",
        _table([data["held_out_baseline"]]) if data["held_out_baseline"] else "<p>not run (give held-out images)</p>",
        "<h2>Membership inference</h2>",
        _table([data["membership"]]) if data["membership"] else "<p>not run (give held-out images)</p>",
        "</body></html>",
    ]
    return write_atomic(folder / "index.html", "\n".join(parts))


__all__ = ["write_report"]
