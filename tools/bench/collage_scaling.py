"""Wall time and sequential network calls against canvas length: DiffCollage, MultiDiffusion and
sequential outpainting on this CPU.

A chain of 2 to 32 windows of zoo:textures (32x32, one channel, gravel), overlapping by 16, drawn with
the same number of DDIM steps by each method: DiffCollage (crop separator) and MultiDiffusion as
collage priors (all windows of a step in one batched call, DiffCollage's overlaps in a second), and
sequential outpainting (window after window, each a full sampling run). For each it prints the
sequential network calls, the wall time, the time per window, and the share of the time spent
inside the window prior's ``predict`` (the network); the rest is the collage's gathering,
combining and scattering and the sampler. ``--plot`` writes the figure of docs/benchmarks.md.

    python tools/bench/collage_scaling.py --steps 10 --call-costs --plot docs/collage-scaling.png > collage-scaling.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import diffcore
from diff_collage import collage, graphs, outpaint
from diffcore import Cond
from diffcore.priors import PriorWrapper

WINDOWS = (2, 4, 8, 16, 32)
METHODS = ("DiffCollage", "MultiDiffusion", "sequential outpainting")


class Timed(PriorWrapper):
    """The window prior, with the seconds spent in its ``predict`` and the number of calls counted."""

    def __init__(self, prior):
        super().__init__(prior)
        self.seconds, self.calls = 0.0, 0

    def predict(self, x_t, t, cond=None):
        start = time.perf_counter()
        out = self.prior.predict(x_t, t, cond)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def run(window, method: str, windows: int, n: int, steps: int, seed: int, cond: Cond | None = None, size: int = 32) -> dict:
    """One canvas of ``windows`` windows of ``size`` (overlap half a window) by ``method``: network calls, seconds, seconds in the
    network."""
    timed = Timed(window)
    g = graphs.chain(windows, size, size // 2)
    start = time.perf_counter()
    if method == "sequential outpainting":
        x = outpaint(timed, g, n=n, steps=steps, cond=cond, generator=torch.Generator().manual_seed(seed))
    else:
        prior = collage(timed, g, method="diffcollage" if method == "DiffCollage" else "multidiffusion")
        x = diffcore.sample(prior, n, steps=steps, cond=cond, generator=torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    assert bool(torch.isfinite(x).all())
    return {"calls": timed.calls, "seconds": seconds, "network": timed.seconds}


def call_costs(window, cond: Cond, repeats: int = 15) -> None:
    """Milliseconds per call of the window prior against the batch (the median of ``repeats`` calls), on a
    window and on an overlap strip: what batching can save on this CPU (the per-call overhead) and what
    it cannot (the work)."""
    import statistics

    print("| input | batch | ms per call | ms per sample |\n|---|---|---|---|")
    for shape in ((32, 32), (32, 16)):
        for batch in (1, 2, 4, 8, 16, 32):
            x = torch.randn(batch, 1, *shape, generator=torch.Generator().manual_seed(0))
            times = []
            with torch.no_grad():
                window.predict(x, 0.5, cond)
                for _ in range(repeats):
                    start = time.perf_counter()
                    window.predict(x, 0.5, cond)
                    times.append(time.perf_counter() - start)
            ms = 1000 * statistics.median(times)
            print(f"| 1x{shape[0]}x{shape[1]} | {batch} | {ms:.1f} | {ms / batch:.1f} |", flush=True)
    print()


def plot(results: dict, steps: int, n: int, path: Path) -> None:
    from diffcore.tour import require_matplotlib

    require_matplotlib().use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for method in METHODS:
        ws = sorted(w for (m, w) in results if m == method)
        left.plot(ws, [results[(method, w)]["seconds"] for w in ws], "o-", label=method)
        right.plot(ws, [results[(method, w)]["calls"] / steps for w in ws], "o-", label=method)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("windows in the chain (32x32, overlap 16)")
        ax.set_xticks(list(WINDOWS), [str(w) for w in WINDOWS])
        ax.grid(alpha=0.3)
    left.set_ylabel("wall time (s)")
    right.set_ylabel("sequential network calls per step")
    left.legend(fontsize=8)
    fig.suptitle(f"zoo:textures, {n} canvas{'es' if n > 1 else ''}, {steps} DDIM steps, one CPU thread", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--n", type=int, default=1, help="canvases drawn at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--windows", default=",".join(map(str, WINDOWS)))
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--call-costs", action="store_true", help="also time one call of the window prior against the batch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    textures = diffcore.create("prior", "zoo:textures")
    cond = Cond(labels=torch.tensor([2]))  # gravel
    run(textures, "DiffCollage", 2, args.n, 2, args.seed, cond)  # warm up
    if args.call_costs:
        call_costs(textures, cond)
    print("| windows | canvas | method | sequential calls | seconds | per window (s) | in the network | speed-up over outpainting |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for windows in (int(w) for w in args.windows.split(",")):
        for method in METHODS:
            results[(method, windows)] = run(textures, method, windows, args.n, args.steps, args.seed, cond)
        base = results[("sequential outpainting", windows)]["seconds"]
        for method in METHODS:
            r = results[(method, windows)]
            print(
                f"| {windows} | 32x{32 + 16 * (windows - 1)} | {method} | {r['calls']} | {r['seconds']:.2f} | "
                f"{r['seconds'] / windows:.3f} | "
                f"{100 * r['network'] / r['seconds']:.0f}% | {base / r['seconds']:.1f}x |",
                flush=True,
            )
    print(f"\n{args.n} canvas(es), {args.steps} DDIM steps, seed {args.seed}, {args.threads} CPU thread(s).")
    if args.plot is not None:
        plot(results, args.steps, args.n, args.plot)


if __name__ == "__main__":
    main()
