"""DiffCollage against the exact Gaussian AR(1) process: the covariance each method's sampler produces.

The window prior is ``GaussianPrior`` with covariance rho^|i-j| on 16 coordinates; a chain of windows
overlapping by 4 or 8 covers a signal of 64. Every prediction is linear in x_t (zero mean), so a
sampler started from N(0, I) is a linear map (DDIM) or a linear map plus Gaussian noise (ancestral
DDPM) and its output covariance is computed exactly, with no sampling noise. The table gives the
largest error of that covariance against rho^|i-j| (and of the lag-averaged autocovariance), for
DiffCollage with the exact separator (``GaussianPrior.marginal``), with the derived 'mode'
separator at 1, 2 and 4 fixed-point calls, MultiDiffusion and Mixture of Diffusers.

    python tools/bench/collage_exactness.py > collage-exactness.md
"""

from __future__ import annotations

import argparse
import time

import torch

import diffcore
from diff_collage import collage, graphs
from diffcore.samplers import ddim
from diffcore.samplers.grid import coefs

W, L = 16, 64


def ar1(n: int, rho: float) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    return rho ** (i[:, None] - i[None]).abs()


def ddim_covariance(prior, steps: int) -> torch.Tensor:
    m = ddim(prior, torch.eye(prior.sample_shape[0], dtype=torch.float64), prior.schedule.timesteps(steps)).T
    return m @ m.T


def ddpm_covariance(prior, steps: int) -> torch.Tensor:
    eye = torch.eye(prior.sample_shape[0], dtype=torch.float64)
    cov, ts = eye.clone(), prior.schedule.timesteps(steps)
    for t, s in zip(ts[:-1], ts[1:]):
        a_t, s_t = coefs(prior.schedule, t, eye)
        a_s, s_s = coefs(prior.schedule, s, eye)
        var = s_t**2 - (a_t / a_s) ** 2 * s_s**2
        m = ((a_t / a_s) * s_s**2 / s_t**2 * eye + a_s * var / s_t**2 * prior.predict(eye, t).x0).T
        cov = m @ cov @ m.T + var * s_s**2 / s_t**2 * eye
    return cov


def acf_error(cov: torch.Tensor, rho: float, lags: int = 24) -> float:
    i = torch.arange(cov.shape[0])
    lag = (i[:, None] - i[None]).abs()
    acf = torch.stack([cov[lag == k].mean() for k in range(lags)])
    return float((acf - rho ** torch.arange(float(lags), dtype=torch.float64)).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rhos", default="0.8,0.9")
    parser.add_argument("--overlaps", default="4,8")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        "| rho | overlap | method | DDIM max error | DDIM autocov. error | DDPM max error | DDPM autocov. error "
        "|\n|---|---|---|---|---|---|---|"
    )
    start = time.perf_counter()
    for rho in (float(r) for r in args.rhos.split(",")):
        window = diffcore.priors.GaussianPrior(torch.zeros(W), ar1(W, rho))
        truth = ar1(L, rho)
        for overlap in (int(o) for o in args.overlaps.split(",")):
            g = graphs.chain((L - W) // (W - overlap) + 1, W, overlap)
            methods = {
                "DiffCollage, exact separator": collage(window, g, separator_prior=window.marginal(range(overlap))),
                "DiffCollage, mode separator x1": collage(window, g, separator="mode"),
                "DiffCollage, mode separator x2": collage(window, g, separator="mode", separator_steps=2),
                "DiffCollage, mode separator x4": collage(window, g, separator="mode", separator_steps=4),
                "MultiDiffusion": collage(window, g, method="multidiffusion"),
                "Mixture of Diffusers": collage(window, g, method="mixture"),
            }
            for name, prior in methods.items():
                cd, cp = ddim_covariance(prior, args.steps), ddpm_covariance(prior, args.steps)
                cells = [float((cd - truth).abs().max()), acf_error(cd, rho), float((cp - truth).abs().max()), acf_error(cp, rho)]
                print(f"| {rho} | {overlap} | {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)
    print(
        f"\n{args.steps} steps of each sampler on the DDPM linear schedule (1000 training steps); {time.perf_counter() - start:.0f} s on "
        "this CPU."
    )


if __name__ == "__main__":
    main()
