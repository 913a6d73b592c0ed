"""Drawing collages from options: what ``diffcore collage`` and its job task share.

:func:`prepare` checks every option and builds the collage prior once (a bad option is a one-line
:class:`~diffcore.errors.DiffcoreError` before any work); the returned :class:`Drawing` draws the
canvases of one seed and describes them (:meth:`Drawing.metrics`), and :func:`png` draws them as
one picture. :func:`collage_task` is the job task (``task = "collage"``, or ``diffcore collage
--job JOB.toml``): one seed per item, written as ``<key>.png`` and ``<key>.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from diffcore.errors import DiffcoreError


@dataclass
class Drawing:
    """A collage prior ready to draw ``n`` canvases per seed with ``sampler`` in ``steps`` steps."""

    prior: Any
    graph: Any
    settings: dict
    n: int
    steps: int
    sampler: str

    def __call__(self, seed: int) -> tuple[torch.Tensor, dict]:
        """The canvases of ``seed`` (on the CPU) and what is measured about them: the sequential network
        calls, the seam score and the sampling seconds."""
        import time

        import diffcore
        from diff_collage.seams import seam_score

        calls = self.prior.calls
        start = time.perf_counter()
        x = diffcore.sample(self.prior, self.n, steps=self.steps, sampler=self.sampler, generator=torch.Generator().manual_seed(seed))
        seconds = time.perf_counter() - start
        x = x.detach().cpu()
        calls = self.prior.calls - calls
        scale = self.prior.latent.factors if self.prior.latent is not None else 1
        score = seam_score(x, self.graph, scale=scale) if self.graph.n_windows > 1 else None
        measured = {"network_calls": calls, "network_calls_per_step": calls / self.steps, "seam_score": score, "seed": seed}
        return x, {**measured, "sample_seconds": seconds}

    def metrics(self, measured: dict) -> dict:
        """The settings and the measured values of one drawing, as ``metrics.json`` holds them."""
        measured = dict(measured)
        seconds = measured.pop("sample_seconds", None)
        out = {**self.settings, **measured}
        if seconds is not None:
            out["seconds"] = {"sample": round(seconds, 3)}
        return out


def prepare(
    prior: str,
    *,
    graph: str = "chain",
    windows: int = 4,
    rows: int = 2,
    cols: int = 2,
    overlap=None,
    axis: int = -1,
    wrap: bool = False,
    method: str = "diffcollage",
    separator: str = "crop",
    separator_steps: int = 1,
    steps: int = 25,
    sampler: str = "ddim",
    n: int = 1,
    label=None,
    labels=None,
    prompt=None,
    prompts=None,
    max_batch: int | None = None,
    device=None,
    dtype=None,
) -> Drawing:
    """Check the options and build the collage of the window prior ``prior`` (a spec); see docs/collage.md."""
    import diffcore
    from diff_collage.prior import collage
    from diff_collage.spec import make_graph, window_conds
    from diffcore.devices import build_prior

    for name, value in (("steps", steps), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DiffcoreError(f"{name} must be a positive integer, got {value!r}")
    diffcore.create("sampler", sampler)  # an unknown sampler or option fails before any work
    window = build_prior(prior, device=device, dtype=dtype)
    g = make_graph(window, graph, windows=windows, rows=rows, cols=cols, overlap=overlap, axis=axis, wrap=wrap)
    conds = window_conds(window, g.n_windows, label=label, labels=labels, prompt=prompt, prompts=prompts)
    if conds is None and window.accepts and window.null_cond is not None and window.null_cond.given():
        from diffcore.priors import unconditional

        window = unconditional(window)
    built = collage(window, g, method=method, separator=separator, separator_steps=separator_steps, max_batch=max_batch, conds=conds)
    image_shape = tuple(built.image_shape)
    if len(image_shape) != 3 or image_shape[0] not in (1, 3):
        raise DiffcoreError(f"`diffcore collage` draws images (C, H, W) with C = 1 or 3; this collage's samples have shape {image_shape}")
    settings = {
        "method": method,
        "separator": separator if method == "diffcollage" else None,
        "prior": prior,
        "graph": g.to_dict(),
        "windows": g.n_windows,
        "window_shape": list(window.sample_shape),
        "canvas_shape": list(built.sample_shape),
        "image_shape": list(image_shape),
        "n": n,
        "steps": steps,
        "sampler": sampler,
        "conditions": {"label": label, "labels": labels, "prompt": prompt, "prompts": prompts},
        "device": str(built.device),
    }
    return Drawing(built, g, settings, n, steps, sampler)


def png(x: torch.Tensor) -> bytes:
    """Canvases ``(N, C, H, W)`` in [-1, 1] as one PNG: one per row when they are wide, else a square grid."""
    from diffcore.tour import encode_png, image_grid

    wide = x.shape[-1] >= 2 * x.shape[-2]
    try:
        return encode_png(image_grid(x, nrow=1 if wide else None))
    except ImportError as exc:
        raise DiffcoreError(str(exc)) from exc


def collage_task(
    prior: str,
    graph: str = "chain",
    windows: int = 4,
    rows: int = 2,
    cols: int = 2,
    overlap: int | None = None,
    axis: int = -1,
    wrap: bool = False,
    method: str = "diffcollage",
    separator: str = "crop",
    separator_steps: int = 1,
    steps: int = 25,
    sampler: str = "ddim",
    n: int = 1,
    label=None,
    labels=None,
    prompt: str | None = None,
    prompts=None,
    max_batch: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
):
    """Draw the canvases of each item's seed: <key>.png and <key>.json (settings, network calls, seam score)

    The options are ``diffcore collage``'s. The record leaves out the seconds, so a resumed or
    sharded job writes the same bytes.
    """
    import json

    drawing = prepare(
        prior,
        graph=graph,
        windows=windows,
        rows=rows,
        cols=cols,
        overlap=overlap,
        axis=axis,
        wrap=wrap,
        method=method,
        separator=separator,
        separator_steps=separator_steps,
        steps=steps,
        sampler=sampler,
        n=n,
        label=label,
        labels=labels,
        prompt=prompt,
        prompts=prompts,
        max_batch=max_batch,
        device=device,
        dtype=dtype,
    )

    def run(item) -> dict[str, bytes]:
        x, measured = drawing(item.seed)
        measured.pop("sample_seconds")
        record = drawing.metrics(measured)
        return {".png": png(x), ".json": (json.dumps(record, indent=2) + "\n").encode("utf-8")}

    return run
