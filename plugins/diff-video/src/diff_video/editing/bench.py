"""The editors side by side on the synthetic video: consistency, fidelity, structure and time.

:func:`compare` edits the moving, rotating digit of :mod:`diff_video.editing.synthetic` (16
frames by default) from its class to ``target`` with each editor under the same settings, and
measures each edit with :func:`diff_video.editing.metrics.edit_metrics`; the source video itself
is the first row (its own warp error is the flow's floor). tools/bench/video_edit.py prints the
table of docs/video.md.
"""

from __future__ import annotations

import time

from diff_video.editing.engine import EditSettings, edit_video
from diff_video.editing.metrics import edit_metrics
from diff_video.editing.synthetic import moving_rotating_digit


def compare(prior, editors: dict, *, index: int = 2, target: int = 3, frames: int = 16, settings: EditSettings | None = None) -> list[dict]:
    """One row per editor (``{label: editor}``), after the source's own row; the edits are in ``row["video"]``."""
    video, label = moving_rotating_digit(index, frames)
    rows = [{"editor": "source video", **edit_metrics(video, video, target=label), "video": video, "seconds": 0.0}]
    for name, editor in editors.items():
        began = time.perf_counter()
        out = edit_video(prior, video, target, source=label, editor=editor, settings=settings)
        seconds = time.perf_counter() - began
        rows.append({"editor": name, **edit_metrics(video, out, target=target), "video": out, "seconds": seconds})
    return rows


def markdown(rows: list[dict], baseline: str = "per-frame") -> str:
    """The rows as a markdown table, with each warp error relative to ``baseline``'s."""
    base = next((r["warp_error"] for r in rows if r["editor"] == baseline), None)
    lines = [
        "| editor | warp error | vs per-frame | frame difference | fidelity | structure PSNR (dB) | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = "" if base is None or r["editor"] == "source video" else f"{100 * (r['warp_error'] / base - 1):+.0f}%"
        fidelity = f"{r['fidelity']:.2f}" if "fidelity" in r else ""
        lines.append(
            f"| {r['editor']} | {r['warp_error']:.4f} | {change} | {r['frame_difference']:.4f} | {fidelity} | "
            f"{r['structure_psnr']:.1f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


__all__ = ["compare", "markdown"]
