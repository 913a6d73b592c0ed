"""diffcore's own tour section: every sampler against an exact 2-D Gaussian mixture.

The prior's denoiser is exact at every t, so whatever separates a sampler's samples from exact
ones is the sampler's discretisation error alone. The section shows the exact marginals of the
forward process, samples of each sampler over the exact density, and the sliced Wasserstein
distance (:func:`diffcore.metrics.sliced_wasserstein`) against exact samples as steps grow,
next to the floor that finite sample sets allow.
"""

from __future__ import annotations

import math
import time

import torch

from diffcore.metrics import sliced_wasserstein
from diffcore.priors import GaussianMixturePrior, PriorWrapper
from diffcore.samplers import SAMPLERS, sample

# one colour and marker per sampler, shared by every picture (euler draws dashed: it coincides with ddim)
STYLE = {
    "ddpm": ("#e8590c", "o", "-"),
    "ddim": ("#1971c2", "s", "-"),
    "euler": ("#2f9e44", "^", "--"),
    "heun": ("#9c36b5", "D", "-"),
    "dpm++2m": ("#c2255c", "v", "-"),
}
EXACT = "#343a40"
LIMIT = 3.6  # half width of the plotted square


def ring_mixture(k: int = 8, radius: float = 2.5, radial_std: float = 0.12, tangent_std: float = 0.38) -> GaussianMixturePrior:
    """``k`` elongated Gaussians on a ring, weights growing 1 : 2 : ... : k around it."""
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    means = radius * torch.stack([angles.cos(), angles.sin()], 1)
    radial = torch.stack([angles.cos(), angles.sin()], 1)
    tangent = torch.stack([-angles.sin(), angles.cos()], 1)
    covs = radial_std**2 * radial[:, :, None] * radial[:, None, :] + tangent_std**2 * tangent[:, :, None] * tangent[:, None, :]
    weights = torch.arange(1, k + 1, dtype=torch.float64)
    return GaussianMixturePrior(means, weights, covs)


class _Counted(PriorWrapper):
    """A prior that counts its network evaluations (NFE)."""

    def __init__(self, prior):
        super().__init__(prior)
        self.calls = 0

    def predict(self, x_t, t, cond=None):
        self.calls += 1
        return self.prior.predict(x_t, t, cond)


def _density_grid(prior, t: float = 0.0, size: int = 220):
    import numpy as np

    axis = torch.linspace(-LIMIT, LIMIT, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    logp = prior.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1), t).reshape(size, size)
    return xx.numpy(), yy.numpy(), np.asarray(logp.numpy(), dtype=float)


def _density_panel(ax, grid, cmap="Greys", alpha=0.5, edge="#868e96"):
    import numpy as np

    xx, yy, logp = grid
    top = float(logp.max())
    levels = np.linspace(top - 9.0, top, 10)
    ax.contourf(xx, yy, logp, levels=levels, cmap=cmap, alpha=alpha, extend="min")
    ax.contour(xx, yy, logp, levels=levels[3::3], colors=edge, linewidths=0.5, linestyles="solid", alpha=0.8)
    ax.set_xlim(-LIMIT, LIMIT)
    ax.set_ylim(-LIMIT, LIMIT)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7, length=2)


def section(tour) -> None:
    """Samplers on an exact Gaussian mixture: samples, densities and error against steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (2000, 8, 2) tensors: threads only add synchronisation, and timings get noisy
    try:
        _run(tour)
    finally:
        torch.set_num_threads(threads)


def _run(tour) -> None:
    n = 1000 if tour.quick else 2000
    steps_list = (5, 10, 20, 50) if tour.quick else (5, 10, 20, 50, 100)
    shown = 20  # steps of the scatter panels
    n_dirs = 128 if tour.quick else 256
    n_pairs = 3 if tour.quick else 6
    prior = ring_mixture()
    sw = lambda a, b: sliced_wasserstein(a, b, n_dirs=n_dirs, generator=tour.generator(7))  # noqa: E731 - same directions everywhere

    tour.text(
        f"A mixture of **{prior.n_components} anisotropic Gaussians** on a ring in 2-D, with weights 1 : 2 : ... : 8 "
        "(`diffcore.priors.GaussianMixturePrior`, DDPM linear schedule with 1000 steps). Its denoiser is exact at every t, "
        "so the difference between a sampler's samples and exact samples is the sampler's discretisation error alone. "
        f"Each sampler draws {n} samples from the same starting noise."
    )

    # the forward process: exact marginals p_t
    times = (0.0, 0.05, 0.1, 0.2, 0.4)
    fig = tour.new_figure(figsize=(11.5, 2.75))
    axes = fig.subplots(1, len(times))
    for ax, t in zip(axes, times):
        _density_panel(ax, _density_grid(prior, t, size=160), cmap="Purples", alpha=0.85, edge="white")
        tt = torch.tensor(t, dtype=torch.float64)
        a, s = float(prior.schedule.alpha(tt)), abs(float(prior.schedule.sigma(tt)))
        ax.set_title(f"t = {t:g}:  α = {a:.2f},  σ = {s:.2f}", fontsize=9)
        ax.set_xticks([-3, 0, 3])
        ax.set_yticks([-3, 0, 3])
    fig.suptitle("The forward process: exact log-densities of x_t = α(t) x₀ + σ(t) ε", fontsize=11)
    tour.figure(
        "marginals", fig, caption="Exact log-densities of the noised data at four times, computed in closed form by `log_prob(x, t)`."
    )

    # exact reference samples and the floor: the distance between independent exact sample sets
    exact = prior.sample(n, generator=tour.generator(100))
    pairs = [
        sw(prior.sample(n, generator=tour.generator(200 + 2 * i)), prior.sample(n, generator=tour.generator(201 + 2 * i)))
        for i in range(n_pairs)
    ]
    floor = sum(pairs) / len(pairs)
    spread = (sum((p - floor) ** 2 for p in pairs) / max(1, len(pairs) - 1)) ** 0.5

    # the sweep: every sampler at every step count, from the same starting noise
    results: dict[str, dict[int, dict]] = {name: {} for name in SAMPLERS}
    jobs = [(name, steps) for name in SAMPLERS for steps in steps_list]
    for name, steps in tour.progress(jobs, "sampling"):
        counted = _Counted(prior)
        start = time.perf_counter()
        x = sample(counted, n, steps=steps, sampler=name, generator=tour.generator(1))
        seconds = time.perf_counter() - start
        results[name][steps] = {"x": x, "sw": sw(x, exact), "nfe": counted.calls, "us": 1e6 * seconds / n}

    # (a) samples of each sampler over the exact density
    density = _density_grid(prior)
    fig = tour.new_figure(figsize=(10.5, 7.4))
    axes = fig.subplots(2, 3).ravel()
    panels = [
        ("exact", exact, EXACT, None),
        *((name, results[name][shown]["x"], STYLE[name][0], results[name][shown]["sw"]) for name in SAMPLERS),
    ]
    for ax, (name, x, colour, dist) in zip(axes, panels):
        _density_panel(ax, density)
        pts = x.numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=2.5, color=colour, alpha=0.6, linewidths=0, rasterized=True)
        title = "exact samples" if dist is None else f"{name}, {shown} steps"
        sub = f"exact vs exact\nSW ≈ {floor:.3f}" if dist is None else f"SW to exact\n{dist:.3f}"
        ax.set_title(title, fontsize=11.5, color=colour, fontweight="bold")
        ax.text(0, 0, sub, ha="center", va="center", fontsize=10, color="#495057")
    fig.suptitle(f"{n} samples per panel over the exact log-density", fontsize=12)
    tour.figure(
        "samples",
        fig,
        caption=f"Each sampler at {shown} steps from the same starting noise, on contours of the exact log-density. "
        "SW is the sliced Wasserstein distance to exact samples; the floor is its value between two exact sample sets.",
    )

    # (b) error against steps and against model evaluations
    fig = tour.new_figure(figsize=(10.5, 4.2))
    ax_steps, ax_nfe = fig.subplots(1, 2, sharey=True)
    for name in SAMPLERS:
        colour, marker, line = STYLE[name]
        steps = list(results[name])
        dists = [results[name][s]["sw"] for s in steps]
        nfes = [results[name][s]["nfe"] for s in steps]
        ax_steps.plot(steps, dists, line, color=colour, marker=marker, markersize=5, linewidth=1.6, label=name)
        ax_nfe.plot(nfes, dists, line, color=colour, marker=marker, markersize=5, linewidth=1.6, label=name)
    nfe_ticks = [v for v in (5, 10, 20, 50, 100, 200) if v <= max(results["heun"][s]["nfe"] for s in steps_list)]
    for ax, label, ticks in ((ax_steps, "sampler steps", steps_list), (ax_nfe, "model evaluations (NFE)", nfe_ticks)):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ticks, [str(v) for v in ticks])
        ax.xaxis.set_minor_formatter("")
        ax.axhspan(max(floor - spread, floor * 0.5), floor + spread, color="#adb5bd", alpha=0.3, linewidth=0)
        ax.axhline(floor, color="#495057", linestyle=":", linewidth=1.4, label="floor: exact vs exact")
        ax.set_xlabel(label)
        ax.grid(True, which="both", color="#e9ecef", linewidth=0.6)
        ax.tick_params(labelsize=8)
    ax_steps.set_ylabel("sliced Wasserstein distance to exact samples")
    ax_steps.set_title("error against steps", fontsize=11)
    ax_nfe.set_title("error against cost (heun evaluates twice per step)", fontsize=11)
    ax_nfe.legend(fontsize=8, frameon=False, loc="upper right")
    tour.figure(
        "error-vs-steps",
        fig,
        caption=f"Sliced Wasserstein distance ({n_dirs} directions) between {n} samples of each sampler and {n} exact samples, on "
        "log-log axes. "
        f"The dotted line and band are the mean and spread over {n_pairs} pairs of independent exact sample sets: nothing below it is "
        "measurable at this sample size.",
    )

    # (c) the numbers
    rows = []
    for name in SAMPLERS:
        row = {"sampler": name}
        row.update({f"SW @ {s}": results[name][s]["sw"] for s in steps_list})
        last = steps_list[-1]
        row[f"SW / floor @ {last}"] = results[name][last]["sw"] / floor
        row[f"NFE @ {last}"] = results[name][last]["nfe"]
        row[f"µs / sample @ {shown}"] = results[name][shown]["us"]
        row[f"µs / sample @ {last}"] = results[name][last]["us"]
        rows.append(row)
    tour.table(
        "sliced-wasserstein",
        rows,
        caption=f"Sliced Wasserstein distance to exact samples by steps (floor {floor:.4f}), and wall time per sample on this CPU.",
    )

    tour.metric("SW floor (exact vs exact)", floor)
    for name in SAMPLERS:
        tour.metric(f"{name} SW @ {shown} steps", results[name][shown]["sw"])
    reached = {name: next((st for st in steps_list if results[name][st]["sw"] <= floor + spread), None) for name in SAMPLERS}
    low = min(steps_list)
    best = min(SAMPLERS, key=lambda s: results[s][low]["sw"])
    fastest = ", ".join(f"{name} {st}" if st else f"{name} more than {steps_list[-1]}" for name, st in reached.items())
    same = (
        torch.equal(results["ddim"][shown]["x"], results["euler"][shown]["x"])
        or abs(results["ddim"][shown]["sw"] - results["euler"][shown]["sw"]) < 1e-6
    )
    tour.text(
        f"Steps each sampler needs to come within the spread of exact-vs-exact distances: {fastest}. "
        f"With only {low} steps, **{best}** is closest to the mixture. "
        + (
            "ddim and euler give the same samples: in EDM's scaled variables, DDIM with eta = 0 *is* Euler's method on the "
            "probability-flow ODE. "
            if same
            else ""
        )
        + "ddpm injects fresh noise at every step, so it needs more steps to forget its discretisation error."
    )
