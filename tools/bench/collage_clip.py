"""Why DiffCollage blew up on zoo:patches, and the fix: where the x0 clip goes.

The zoo's networks clip their x0 estimate to [-1, 1] (``consistent`` False; without the clip a
single window already diverges). DiffCollage combines the windows' and overlaps' predictions with
counting numbers +1 and -1. The first version combined the *clipped* x0 estimates that way; the
clip is not linear, so at high noise, where the raw estimates lie far outside [-1, 1], the sum of
clipped windows minus clipped overlaps no longer cancels. Now the canvas's x0 comes from the
combined eps (the combined score) and is clipped after, as diffusers' DDIM clips one window's.

Part 1, the zoo networks: strips of 5 windows of 32x32 (overlap 8 and 16) and a 3x3 grid, the same
seed and starting noise for every row: the seam score, the contrast (the samples' standard
deviation over that of single 32x32 windows drawn from the same noise) and the share of saturated
pixels (|x| > 0.99), for DiffCollage with the old rule ("clipped x0 summed") and the new one ("x0
from the combined eps, clipped"), with the crop and the mode separators, and for MultiDiffusion and
the mixture. Part 2, the Gaussian oracle: a window prior whose predictions are exact gives the same
covariance under both rules (the clip never binds where the sum cancels); with a fixed smooth error
field added to its eps (a network's error, relative size ``e``) and x0 clipped at 3, the largest
covariance error against rho^|i-j| of each rule.

    python tools/bench/collage_clip.py --n 8 --steps 20 > collage-clip.md
"""

from __future__ import annotations

import argparse
import time

import torch

import diffcore
from diff_collage import collage, graphs, seam_score
from diff_collage.prior import CollagePrior
from diffcore import Cond
from diffcore.conversions import eps_to_x0
from diffcore.priors import GaussianPrior, PriorWrapper
from diffcore.protocols import Prediction
from diffcore.samplers import get_sampler


class SummedClippedX0(CollagePrior):
    """The first version's rule: the canvas's x0 is the windows' clipped x0 summed with the counting numbers."""

    def canvas_x0(self, flat, x0, eps, alpha, sigma):
        return x0, eps


RULES = {"clipped x0 summed (old)": SummedClippedX0, "x0 from the combined eps, clipped (new)": CollagePrior}


def zoo_rows(name, window, graph, n, steps, seed, cond):
    """Seam score, contrast and saturation of every rule and method on ``graph``."""
    ts = window.schedule.timesteps(steps)
    ddim = get_sampler("ddim")
    shape = (n, *window.sample_shape[:-2], *graph.length) if len(graph.axes) == 2 else (n, *window.sample_shape[:-1], graph.length[0])
    x_init = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    alone = ddim(window, x_init[..., : window.sample_shape[-2], : window.sample_shape[-1]].clone(), ts, cond=cond)
    ref_std = float(alone.std())
    variants = [(f"DiffCollage ({sep}), {rule}", cls, {"separator": sep}) for sep in ("crop", "mode") for rule, cls in RULES.items()]
    variants += [
        ("MultiDiffusion", CollagePrior, {"method": "multidiffusion"}),
        ("Mixture of Diffusers", CollagePrior, {"method": "mixture"}),
    ]
    rows = []
    for label, cls, options in variants:
        start = time.perf_counter()
        x = ddim(cls(window, graph, **options), x_init.clone(), ts, cond=cond)
        seconds = time.perf_counter() - start
        finite = bool(torch.isfinite(x).all())
        score = seam_score(x, graph) if finite else float("nan")
        rows.append(
            f"| {name} | {label} | {score:.2f} | {float(x.std()) / ref_std:.2f} | {float((x.abs() > 0.99).float().mean()):.3f} | "
            f"{seconds:.0f} |"
        )
        print(rows[-1], flush=True)
    return rows


class WithError(PriorWrapper):
    """An exact prior whose eps carries a fixed smooth error field ``e tanh(3 x R)`` (``R`` a fixed random
    matrix, another per prior): a network's error at every noise level. x0 from that eps, clipped to ``clip``."""

    def __init__(self, prior, e: float, seed: int, clip: float):
        super().__init__(prior)
        self.e, self.clip = e, clip
        self.consistent = False
        d = prior.sample_shape[0]
        self.R = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) / d**0.5

    def predict(self, x_t, t, cond=None):
        pred = self.prior.predict(x_t, t, cond)
        t64 = torch.as_tensor(t, dtype=torch.float64)
        alpha, sigma = self.schedule.alpha(t64), self.schedule.sigma(t64)
        eps = pred.eps + self.e * torch.tanh(3 * x_t @ self.R)
        return Prediction(x0=eps_to_x0(x_t, eps, alpha, sigma).clamp(-self.clip, self.clip), eps=eps)


def ar1(n: int, rho: float) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    return rho ** (i[:, None] - i[None]).abs()


def gaussian_rows(samples: int, steps: int, rho: float = 0.9):
    window = GaussianPrior(torch.zeros(16, dtype=torch.float64), ar1(16, rho))
    sep = window.marginal(range(8))
    g = graphs.chain(7, 16, 8)
    target = ar1(64, rho)
    rows = []
    for e in (0.0, 0.02, 0.05, 0.1):
        w, s = WithError(window, e, 1, 3.0), WithError(sep, e, 2, 3.0)
        cells = []
        for cls in RULES.values():
            prior = cls(w, g, separator_prior=s, clip_x0=3.0)
            x = diffcore.sample(prior, samples, steps=steps, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            cells.append(float((x.T @ x / samples - target).abs().max()))
        md = diffcore.sample(
            collage(w, g, method="multidiffusion"), samples, steps=steps, generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )
        one = diffcore.sample(w, samples, steps=steps, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        one_err = float((one.T @ one / samples - ar1(16, rho)).abs().max())
        md_err = float((md.T @ md / samples - target).abs().max())
        rows.append(f"| {e} | {one_err:.3f} | {cells[0]:.3f} | {cells[1]:.3f} | {md_err:.3f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="samples (per texture for zoo:textures)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gaussian-samples", type=int, default=4000)
    parser.add_argument("--skip-zoo", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.skip_zoo:
        print("| canvas | method | seam score | contrast | saturated | seconds |\n|---|---|---|---|---|---|")
        patches, textures = diffcore.create("prior", "zoo:patches"), diffcore.create("prior", "zoo:textures")
        labels = Cond(labels=torch.arange(3).repeat(args.n))
        for overlap in (16, 8):
            g = graphs.chain(5, 32, overlap)
            zoo_rows(f"zoo:patches, strip, overlap {overlap}", patches, g, args.n, args.steps, args.seed, None)
        zoo_rows("zoo:patches, 3x3 grid, overlap 16", patches, graphs.grid(3, 3, 32, 16), args.n, args.steps, args.seed, None)
        for overlap in (16, 8):
            g = graphs.chain(5, 32, overlap)
            zoo_rows(f"zoo:textures, strip, overlap {overlap}", textures, g, 3 * args.n, args.steps, args.seed, labels)
        print(f"\n{args.n} samples ({3 * args.n} for the textures: brick, grass, gravel), {args.steps} DDIM steps, seed {args.seed}.\n")
    print(
        "| eps error e | one window | DiffCollage, clipped x0 summed (old) | DiffCollage, x0 from the combined eps (new) | MultiDiffusion |"
    )
    print("|---|---|---|---|---|")
    gaussian_rows(args.gaussian_samples, 50)
    print(
        f"\nLargest covariance error against rho^|i-j| (rho = 0.9; 16 for one window, 64 for a chain of 7 windows "
        f"overlapping by 8 with exact separators), {args.gaussian_samples} samples, 50 DDIM steps, x0 clipped at 3."
    )


if __name__ == "__main__":
    main()
