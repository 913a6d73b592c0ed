"""diff-collage's tour section: large canvases from the zoo's 32x32 texture prior,
DiffCollage next to MultiDiffusion, with seam scores (about half a minute on a 2-core CPU)."""

from __future__ import annotations

import time

import torch

METHODS = ("diffcollage", "multidiffusion")


def _zoo(name: str):
    import diffcore
    from diffcore.errors import UnknownComponentError

    try:
        return diffcore.create("prior", f"zoo:{name}")
    except UnknownComponentError:
        raise ImportError('the collage tour draws with the zoo priors: pip install "diff-collage[zoo]"') from None


def _draw(tour, window, graph, n: int, steps: int, seed: int, **options):
    """Canvases of each method from the same seed, their seam scores, seconds and calls per step."""
    import diffcore
    from diff_collage import collage, seam_score

    out = {}
    for method in METHODS:
        prior = collage(window, graph, method=method, **options)
        start = time.perf_counter()
        x = diffcore.sample(prior, n, steps=steps, generator=tour.generator(seed))
        out[method] = (x, seam_score(x, graph), time.perf_counter() - start, prior.calls / steps)
    return out


def _panel(tour, name: str, rows, caption: str):
    from diffcore.tour import image_grid

    fig = tour.new_figure(figsize=(9.0, 1.25 * len(rows) + 0.3))
    axes = fig.subplots(len(rows), 1, squeeze=False)
    for ax, (title, images) in zip(axes[:, 0], rows):
        ax.imshow(image_grid(images, nrow=1), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    tour.figure(name, fig, caption=caption)


def section(tour) -> None:
    from diff_collage import collage, graphs, segments
    from diffcore import Cond
    from diffcore.priors import Conditioned

    steps = 10 if tour.quick else 20
    textures = _zoo("textures")
    tour.text(
        "A prior trained on 32x32 windows draws content of any length in parallel: DiffCollage (Zhang et al. 2023) "
        "sums the windows' noise predictions and subtracts those of their overlaps, so that the canvas follows the "
        "score of a chain, a loop or a grid of windows; MultiDiffusion (Bar-Tal et al. 2023) averages the windows. "
        "Every step is one batched network call for all windows (and one for all overlaps), whatever the canvas size. "
        "The seam score is the gradient energy across window borders over that inside windows (1: no seam)."
    )
    rows, table = [], []

    # a long strip, one texture, then three textures along it
    strip = graphs.chain(5 if tour.quick else 8, 32, 16)
    gravel = Conditioned(textures, Cond(labels=torch.tensor([2])))
    drawn = _draw(tour, gravel, strip, 2, steps, 0)
    for method, (x, score, seconds, per_step) in drawn.items():
        rows.append((f"{method}: gravel strip 32x{strip.length[0]}, seam score {score:.2f}", x))
        table.append(
            {
                "canvas": f"strip 32x{strip.length[0]}",
                "method": method,
                "seam score": round(score, 3),
                "seconds": round(seconds, 1),
                "network calls per step": per_step,
            }
        )
    labels = segments(["brick", "grass", "gravel"], strip.n_windows)
    conds = [Cond(labels=torch.tensor([textures.class_names.index(name)])) for name in labels]
    x = _draw_one(tour, collage(textures, strip, conds=conds), steps)
    rows.append(("diffcollage: one texture per stretch (brick, grass, gravel): per-window conditions", x))
    _panel(tour, "strip", rows, caption=f"Strips from zoo:textures windows of 32x32, overlap 16, {steps} DDIM steps")

    # a loop, tiled twice: the seam at the canvas end must not show
    loop = graphs.cycle(6, 32, 16)
    brick = Conditioned(textures, Cond(labels=torch.tensor([0])))
    rows = []
    for method, (x, score, seconds, per_step) in _draw(tour, brick, loop, 2, steps, 1).items():
        rows.append(
            (
                f"{method}: a loop of 6 windows, drawn twice side by side, seam score {score:.2f} (the wrap included)",
                torch.cat([x, x], dim=-1),
            )
        )
        table.append(
            {
                "canvas": f"loop 32x{loop.length[0]}",
                "method": method,
                "seam score": round(score, 3),
                "seconds": round(seconds, 1),
                "network calls per step": per_step,
            }
        )
    _panel(
        tour, "loop", rows, caption="A cycle graph: the last window overlaps the first across the canvas end, so the loop tiles seamlessly"
    )

    # a grid canvas: strips subtracted, corners added back
    grid = graphs.grid(2 if tour.quick else 3, 2 if tour.quick else 3, 32, 16)
    grass = Conditioned(textures, Cond(labels=torch.tensor([1])))
    fig = tour.new_figure(figsize=(6.0, 3.2))
    axes = fig.subplots(1, len(METHODS), squeeze=False)
    from diffcore.tour import image_grid

    for ax, (method, (x, score, seconds, per_step)) in zip(axes[0], _draw(tour, grass, grid, 2, steps, 2).items()):
        ax.imshow(image_grid(x, nrow=2), interpolation="nearest")
        ax.set_title(f"{method}\nseam score {score:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        table.append(
            {
                "canvas": f"grid {grid.length[0]}x{grid.length[1]}",
                "method": method,
                "seam score": round(score, 3),
                "seconds": round(seconds, 1),
                "network calls per step": per_step,
            }
        )
    tour.figure(
        "grid",
        fig,
        caption=(
            f"Grass on a {grid.grid_shape[0]}x{grid.grid_shape[1]} grid of 32x32 windows (overlap 16): DiffCollage subtracts the strips "
            "where two windows overlap and adds back the corners where four meet"
        ),
    )
    tour.table(
        "seams",
        table,
        caption="Seam scores (lower: less visible borders; 1 is seamless), seconds for 2 canvases, sequential network calls per step",
    )
    for row in table:
        if row["method"] == "diffcollage":
            tour.metric(f"seam score, {row['canvas'].split()[0]} (DiffCollage)", row["seam score"])


def _draw_one(tour, prior, steps: int):
    import diffcore

    return diffcore.sample(prior, 1, steps=steps, generator=tour.generator(3))
