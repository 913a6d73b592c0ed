"""The Gaussian-mixture benchmark of Cardoso et al. (MCGdiff, ICLR 2024), exact posterior included.

Setup, as the authors' script does it (see docs/inverse-gmm.md):

- prior: 25 components in ``d_x`` dimensions, means ``(-8i, -8j, -8i, -8j, ...)`` for i, j in
  {-2..2}, identity covariances, weights ``z^2`` normalised with ``z ~ N(0, I_25)``;
- operator: ``A0 ~ N(0, 1)^{d_y x d_x}``, ``U, S, V = svd(A0)``, S replaced by sorted uniform draws,
  ``A = U diag(S) V[:d_y]``; ``sigma_y = uniform * max(S)``; ``y = A x* + sigma_y eps``, x* from the prior;
- diffusion: the authors' DDPM, whose betas ``linspace(0.02, 1e-4, 999)`` decrease in t, with
  ``alpha_bar = cumprod([1, 1 - beta])`` (:class:`AuthorsSchedule`), their timestep selection and
  ``eta = 0.6`` at 20 steps, ``0.85`` at 100;
- metric: sliced Wasserstein (100 directions) against exact posterior samples; "floor" between two
  exact sample sets, "prior" from prior samples.

``settings`` chooses the solvers' options: ``authors`` (default) takes the authors' settings where
they have one and ours fitted to this mixture otherwise (:func:`solver_options`); ``defaults`` runs
every solver with its defaults, as a user calls ``diff_inverse.solve``.

``weights`` chooses how the mixture weights are drawn: ``problem`` (default) draws new weights
for every problem, so a cell averages over weight draws too; ``block`` is what the authors'
script does: one weight vector per (d_x, steps) block, shared by the problems of its cells, and
different problems for 20 and 100 steps. With ``block`` a cell's mean depends strongly on its one
weight draw (tools/bench/gmm_authors.py --part block measures how much), so cells of two runs compare only through
their prior column.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from diffcore.metrics import sliced_wasserstein
from diffcore.priors import GaussianMixturePrior
from diffcore.schedules import DiscreteSchedule

DEFAULT_SOLVERS = ("mcgdiff", "ddrm", "dps", "ddnm+", "pigdm", "red-diff", "diffpir", "daps")
SETTINGS = ("authors", "defaults")


@dataclass(frozen=True, eq=False)
class AuthorsSchedule(DiscreteSchedule):
    """The MCGdiff script's DDPM with its own time grid for ``steps`` network calls.

    Grid of ``n = steps + 1`` indices: 0, then a new index each time ``sqrt(alpha_bar)`` has
    dropped by ``0.99 / (n - 2)``, while ``sqrt(alpha_bar) >= 0.01``; the rest evenly spaced up to
    the last index. Index 0 has ``alpha_bar = 1`` (clean data, t = 0).
    """

    def timesteps(self, steps: int) -> torch.Tensor:
        steps = self._check_steps(steps)
        T = self.num_train_timesteps
        n = steps + 1
        root = self.alphas_cumprod.sqrt()
        idx = [0]
        if n > 2:
            delta, last = 0.99 / (n - 2), 1.0
            for i in range(1, T):
                if float(root[i]) < 0.01 or len(idx) >= n - 1:
                    break
                if last - float(root[i]) >= delta:
                    idx.append(i)
                    last = float(root[i])
        rest = torch.linspace(idx[-1], T - 1, n - len(idx) + 1, dtype=torch.float64)[1:].round()
        grid = torch.cat([torch.tensor(idx, dtype=torch.float64), rest]).flip(0)
        t = (grid + 1) / T
        t[-1] = 0.0
        return t


def authors_schedule(T: int = 1000) -> AuthorsSchedule:
    betas = torch.linspace(0.02, 1e-4, T - 1, dtype=torch.float64)
    return AuthorsSchedule(torch.cumprod(torch.cat([torch.ones(1, dtype=torch.float64), 1 - betas]), 0))


def authors_eta(steps: int) -> float:
    """The DDIM eta of the authors' script: 0.6 at 20 steps, 0.85 at 100 (linear in between)."""
    return float(min(0.85, max(0.6, 0.6 + (steps - 20) * 0.25 / 80)))


def solver_options(name: str, steps: int, samples: int) -> dict:
    """The authors' settings where they have one; ours otherwise."""
    eta = authors_eta(steps)
    if name == "mcgdiff":
        p = min(1000, samples)
        return {"particles": p, "draws": p, "eta": eta}
    if name == "ddrm":  # the script passes etaC = 1 (fresh noise in the null space), on its own grid (no snap)
        return {"etaA": 0.85, "etaB": 1.0, "etaC": 1.0, "snap": False}
    if name == "dps":  # the script's step (DDPM posterior mean plus eta times its noise), and no discrepancy stop (theirs has none)
        return {"zeta": 0.1, "eta": eta, "step": "ddpm", "discrepancy": False}
    if name == "ddnm":
        return {"eta": eta}
    if name == "ddnm+":  # the grid as given, like every solver here (the published table predates the snap)
        return {"eta": eta, "snap": False}
    if name == "red-diff":  # Adam's steps are in data units: this mixture spans +-16, not [-1, 1]; the paper's
        # whole walk at a constant rate: A^+ y from 1 to 4 of 8 to 800 coordinates is far from every mode
        return {"lr": 2.0, "t_max": 1.0, "decay": "none"}
    return {}  # diffpir (its data step is scale-free), pigdm and daps (:func:`mixture_options`)


def mixture_variance(prior: GaussianMixturePrior) -> float:
    """The mixture's variance per coordinate (mean over coordinates): its spread, for the solvers that assume a data variance."""
    return float(prior.covariances().diagonal(dim1=1, dim2=2).mean() + prior.means.var(0).mean())


def mixture_options(name: str, prior: GaussianMixturePrior, steps: int) -> dict:
    """The options of ``name`` that depend on the problem's mixture (ΠGDM, DAPS), else {}."""
    if name == "pigdm":
        return pigdm_options(prior, steps)
    if name == "daps":  # r_t^2 with the mixture's variance instead of 1
        return {"data_var": mixture_variance(prior)}
    return {}


def pigdm_options(prior: GaussianMixturePrior, steps: int) -> dict:
    """ΠGDM here: the prior's per-coordinate variance in r_t^2 and the paper's unbounded move (an exact denoiser), on the grid as given."""
    return {"eta": authors_eta(steps), "data_var": mixture_variance(prior), "bound": False, "bound_snr": 0.0, "snap": False}


@dataclass
class Problem:
    prior: GaussianMixturePrior
    matrix: torch.Tensor
    sigma_y: float
    y: torch.Tensor
    posterior: GaussianMixturePrior


def mixture(d_x: int, generator: torch.Generator) -> GaussianMixturePrior:
    grid = torch.tensor([(i, j) for i in range(-2, 3) for j in range(-2, 3)], dtype=torch.float64)
    means = (-8.0 * grid).repeat(1, (d_x + 1) // 2)[:, :d_x]
    weights = torch.randn(25, generator=generator, dtype=torch.float64) ** 2
    return GaussianMixturePrior(means, weights, schedule=authors_schedule())


WEIGHTS = ("problem", "block")


def block_generator(d_x: int, steps: int, seed: int) -> torch.Generator:
    """The generator of a block's shared mixture (``weights="block"``)."""
    return torch.Generator().manual_seed(seed * 100_003 + 50_021 * d_x + 7_919 * steps + 1)


def make_problem(d_x: int, d_y: int, generator: torch.Generator, prior: GaussianMixturePrior | None = None) -> Problem:
    """A random operator, x* and y; the mixture too unless ``prior`` is given (a block's shared one)."""
    prior = prior if prior is not None else mixture(d_x, generator)
    a0 = torch.randn(d_y, d_x, generator=generator, dtype=torch.float64)
    u, _, vh = torch.linalg.svd(a0, full_matrices=False)
    s = torch.rand(d_y, generator=generator, dtype=torch.float64).sort(descending=True).values
    matrix = u @ torch.diag(s) @ vh[:d_y]
    sigma_y = float(torch.rand(1, generator=generator, dtype=torch.float64)) * float(s.max())
    x_star = prior.sample(1, generator=generator, dtype=torch.float64)
    y = x_star @ matrix.T + sigma_y * torch.randn(1, d_y, generator=generator, dtype=torch.float64)
    return Problem(prior, matrix, sigma_y, y, prior.posterior(matrix, y[0], sigma_y))


def run_cell(
    d_x: int,
    d_y: int,
    steps: int,
    *,
    problems: int,
    samples: int,
    solvers=DEFAULT_SOLVERS,
    seed: int = 0,
    n_dirs: int = 100,
    dtype=torch.float64,
    weights: str = "problem",
    settings: str = "authors",
    ess: dict | None = None,
):
    """SW distances per solver (and ``prior``, ``floor``) over ``problems`` random problems, and seconds per call.

    ``weights="problem"``: every problem draws its mixture, and the problems do not depend on
    ``steps``; ``"block"``: the problems share the mixture of the (d_x, steps) block and differ
    between step counts (the authors' protocol). ``settings``: see the module docstring. A dict
    ``ess`` receives, under ``"mcgdiff"``, the smallest effective sample size of each problem's
    filters as a fraction of the particles (:class:`~diff_inverse.solvers.mcgdiff.SMCResult`).
    """
    from diff_inverse import solve
    from diff_inverse.operators import DenseLinear
    from diff_inverse.solvers import MCGdiff

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if settings not in SETTINGS:
        raise ValueError(f"settings must be one of {', '.join(SETTINGS)}, got {settings!r}")
    shared = mixture(d_x, block_generator(d_x, steps, seed)) if weights == "block" else None
    dist = {name: [] for name in (*solvers, "prior", "floor")}
    secs = {name: [] for name in solvers}
    for p in range(problems):
        base = seed * 100_003 + 1000 * d_x + 10 * d_y + p
        g = torch.Generator().manual_seed(base if shared is None else base + 7_919 * steps)
        prob = make_problem(d_x, d_y, g, shared)
        ref = prob.posterior.sample(samples, generator=g, dtype=torch.float64)

        def sw(x, ref=ref, p=p):  # the same directions for every sample set of a problem
            return sliced_wasserstein(x, ref, n_dirs=n_dirs, generator=torch.Generator().manual_seed(p))

        dist["floor"].append(sw(prob.posterior.sample(samples, generator=g, dtype=torch.float64)))
        dist["prior"].append(sw(prob.prior.sample(samples, generator=g, dtype=torch.float64)))
        op = DenseLinear(prob.matrix, sigma_y=prob.sigma_y)
        y = prob.y.to(dtype).expand(samples, -1).contiguous()
        for name in solvers:
            t0 = time.perf_counter()
            options = {} if settings == "defaults" else {**solver_options(name, steps, samples), **mixture_options(name, prob.prior, steps)}
            if name == "mcgdiff":
                result = MCGdiff(**options).run(prob.prior, op, y, steps=steps, generator=g)
                x = result.x
                if ess is not None:
                    ess.setdefault("mcgdiff", []).append(result.min_ess_fraction)
            else:
                x = solve(prob.prior, op, y, solver=name, steps=steps, generator=g, **options)
            secs[name].append(time.perf_counter() - t0)
            dist[name].append(sw(x) if bool(torch.isfinite(x).all()) else math.nan)
    return dist, secs


def summary(values) -> tuple[float, float, float, int]:
    """Mean, 1.96 std / sqrt(n), median over the finite values, and how many were not finite."""
    v = torch.tensor(values, dtype=torch.float64)
    ok = v[torch.isfinite(v)]
    if len(ok) == 0:
        return math.nan, math.nan, math.nan, len(v)
    half = 1.96 * float(ok.std()) / math.sqrt(len(ok)) if len(ok) > 1 else 0.0
    return float(ok.mean()), half, float(ok.median()), len(v) - len(ok)


def run(
    dxs,
    dys,
    steps_list,
    *,
    problems: int,
    samples: int,
    solvers=DEFAULT_SOLVERS,
    seed: int = 0,
    weights: str = "problem",
    settings: str = "authors",
    progress=None,
):
    """Every cell; returns ``{(d_x, d_y, steps): (dist, secs)}``."""
    results = {}
    for d_x in dxs:
        for d_y in dys:
            for steps in steps_list:
                results[(d_x, d_y, steps)] = run_cell(
                    d_x, d_y, steps, problems=problems, samples=samples, solvers=solvers, seed=seed, weights=weights, settings=settings
                )
                if progress is not None:
                    progress(d_x, d_y, steps)
    return results


def _fmt(values) -> str:
    mean, half, median, bad = summary(values)
    text = f"{mean:.2f}±{half:.2f} ({median:.2f})"
    return text + (f" [{bad} non-finite]" if bad else "")


def markdown(results, solvers, *, problems: int, samples: int, weights: str = "problem", settings: str = "authors") -> str:
    """The results as markdown tables: SW mean ± 1.96 std/sqrt(n) (median), and seconds per 1000 samples.

    With ``weights="block"`` the problems differ between step counts, so the prior and floor
    columns are given per step count.
    """
    steps_list = sorted({k[2] for k in results})
    cells = sorted({k[:2] for k in results})
    refs = (
        [(r, n) for r in ("prior", "floor") for n in steps_list]
        if weights == "block"
        else [("prior", steps_list[0]), ("floor", steps_list[0])]
    )
    head = ["d_x", "d_y"] + [f"{s} {n}" for s in solvers for n in steps_list] + [f"{r} {n}" if weights == "block" else r for r, n in refs]
    protocol = " (weights shared per (d_x, steps) block, as the authors' script)" if weights == "block" else ""
    how = "every solver at its defaults" if settings == "defaults" else "the authors' settings where they have one"
    lines = [
        f"Sliced Wasserstein to {samples} exact posterior samples, {problems} problems per cell{protocol}, {how}: "
        "mean ± 1.96 std/sqrt(n) (median). Lower is better.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for d_x, d_y in cells:
        row = [str(d_x), str(d_y)]
        for s in solvers:
            for n in steps_list:
                row.append(_fmt(results[(d_x, d_y, n)][0][s]) if (d_x, d_y, n) in results else "")
        row += [_fmt(results[(d_x, d_y, n)][0][r]) if (d_x, d_y, n) in results else "" for r, n in refs]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Seconds per 1000 samples (mean over problems and d_y), {torch.get_num_threads()} thread(s):", ""]
    head = ["d_x", "steps"] + list(solvers)
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d_x in sorted({k[0] for k in results}):
        for n in steps_list:
            keys = [k for k in results if k[0] == d_x and k[2] == n]
            row = [str(d_x), str(n)]
            for s in solvers:
                t = [v for k in keys for v in results[k][1][s]]
                row.append(f"{1000 * sum(t) / len(t) / samples:.2f}" if t else "")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(results, solvers, path) -> bool:
    """Mean SW per cell and solver (one panel per step count); False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps_list = sorted({k[2] for k in results})
    cells = sorted({k[:2] for k in results})
    fig, axes = plt.subplots(1, len(steps_list), figsize=(5 * len(steps_list), 3.5), squeeze=False)
    for ax, n in zip(axes[0], steps_list):
        for s in (*solvers, "prior", "floor"):
            means = [summary(results[(dx, dy, n)][0][s])[0] if (dx, dy, n) in results else math.nan for dx, dy in cells]
            ax.plot(range(len(cells)), means, marker="o", label=s, linestyle="--" if s in ("prior", "floor") else "-")
        ax.set_xticks(range(len(cells)), [f"{dx}/{dy}" for dx, dy in cells])
        ax.set_yscale("log")
        ax.set_title(f"{n} steps")
        ax.set_xlabel("d_x / d_y")
        ax.set_ylabel("sliced Wasserstein")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
