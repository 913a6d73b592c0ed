"""diff-inverse's tour section: one shipped prior, several operators and solvers, PSNR against
the pseudo-inverse; and a small cell of the exact Gaussian-mixture benchmark."""

from __future__ import annotations

import math
import time

import torch

OPERATORS = {  # name: (spec, sigma_y)
    "inpaint (centre box)": ("inpaint:box=(4,4,8,8)", 0.02),
    "super-resolution x2": ("sr:factor=2", 0.02),
    "Gaussian deblur": ("blur:sigma=1.5", 0.02),
    "denoise": ("denoise", 0.3),
}
SOLVERS = ("ddrm", "ddnm+", "pigdm", "dps")  # ddnm+: the measurements are noisy


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2), averaged over the batch."""
    mse = ((x.clamp(-1, 1) - ref) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(4.0 / mse.clamp_min(1e-12))).mean())


def _digits_grid(tour):
    import diffcore
    from diff_inverse import solve, zoo
    from diffcore.priors import unconditional

    if not zoo.available():
        tour.text(f"The zoo:digits part needs diff-zoo ({zoo.EXTRA}); it is skipped here.")
        return
    prior = unconditional(diffcore.create("prior", "zoo:digits"))
    n = 4 if tour.quick else 8
    x = zoo.digits(n, every=7)  # held-out test digits
    steps = 10 if tour.quick else 25
    rows, panels = [], []
    for label, (spec, sigma_y) in OPERATORS.items():
        op = diffcore.create("operator", spec, x_shape=tuple(x.shape[1:]), sigma_y=sigma_y)
        y = op.measure(x, generator=torch.Generator().manual_seed(0))
        base = op.A_pinv(y)
        row = {"operator": label, "sigma_y": sigma_y, "pseudo-inverse": round(psnr(base, x), 2)}
        panel = [x, base.clamp(-1, 1)]
        for name in SOLVERS:
            start = time.perf_counter()
            out = solve(prior, op, y, solver=name, steps=steps, generator=torch.Generator().manual_seed(1))
            row[name] = round(psnr(out, x), 2)
            row[f"{name} s"] = round(time.perf_counter() - start, 2)
            panel.append(out.clamp(-1, 1))
        rows.append(row)
        panels.append(panel)
    fig = tour.new_figure(figsize=(2.0 * (2 + len(SOLVERS)), 2.1 * len(panels)))
    axes = fig.subplots(len(panels), 2 + len(SOLVERS), squeeze=False)
    from diffcore.tour import image_grid

    titles = ["held-out digits", "pseudo-inverse", *SOLVERS]
    for r, (panel, row) in enumerate(zip(panels, rows)):
        for c, images in enumerate(panel):
            ax = axes[r][c]
            ax.imshow(image_grid(images, nrow=int(math.ceil(math.sqrt(n)))))
            ax.set_xticks([])
            ax.set_yticks([])
            key = titles[c]
            value = "" if c == 0 else f"\n{row['pseudo-inverse' if c == 1 else key]:.1f} dB"
            ax.set_title(f"{key}{value}", fontsize=9)
            if c == 0:
                ax.set_ylabel(row["operator"], fontsize=9)
    tour.figure(
        "digits-grid",
        fig,
        caption=f"zoo:digits as an unconditional prior (null label), {steps} steps per solver; PSNR to the held-out digits",
    )
    tour.table("digits-psnr", rows, caption="PSNR (dB) of each solver and of the pseudo-inverse baseline, and seconds per batch")
    best = sum(max(row[s] for s in SOLVERS) > row["pseudo-inverse"] for row in rows)
    tour.metric("operators where the best solver beats the pseudo-inverse", f"{best} of {len(rows)}")
    worst = [f"{s} on {row['operator']}" for row in rows for s in SOLVERS if row[s] < row["pseudo-inverse"]]
    if worst:
        tour.text("Below the pseudo-inverse here (known problems, open in the inverse-problems issue): " + "; ".join(worst) + ".")


def _gmm_cell(tour):
    from diff_inverse.bench import gmm

    problems = 2 if tour.quick else 4
    dists, secs = gmm.run_cell(8, 2, 20, problems=problems, samples=500, solvers=("ddrm", "dps", "mcgdiff", "pigdm", "daps"))
    fig = tour.new_figure(figsize=(6.5, 3.2))
    ax = fig.subplots()
    names = list(dists)
    means = [sum(dists[k]) / len(dists[k]) for k in names]
    colors = ["#4c72b0" if k not in ("prior", "floor") else "#999999" for k in names]
    ax.bar(names, means, color=colors)
    ax.set_ylabel("sliced Wasserstein to the exact posterior")
    ax.set_title(f"25-component mixture, d_x = 8, d_y = 2, 20 steps, mean over {problems} problems", fontsize=9)
    tour.figure(
        "gmm-cell", fig, caption="Lower is better; 'floor' is exact vs exact samples, 'prior' ignores y. Full tables: docs/inverse-gmm.md"
    )
    tour.table("gmm-cell", [{"solver": k, "SW": round(m, 3)} for k, m in zip(names, means)], caption="Mean sliced Wasserstein distance")


def section(tour) -> None:
    tour.text(
        "One unconditional prior, many inverse problems: each operator measures held-out digits, each "
        "solver samples the posterior with the shipped `zoo:digits` prior, without retraining. Then the exact "
        "Gaussian-mixture benchmark of Cardoso et al. (2024), where the true posterior is known in closed form."
    )
    _digits_grid(tour)
    _gmm_cell(tour)
