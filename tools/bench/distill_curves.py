"""The recovery curves of docs/3d.md: PSNR on held-out views against iterations, per distiller and representation.

Each run distils the exact view-conditioned prior of the blob scene (``analytic-scene``) into a
blank representation at 32x32 (:func:`diff_3d.validation.recover`) and evaluates eight held-out
views every 100 iterations. Runs are sequential, one thread each.

    python tools/bench/distill_curves.py --steps 2000 --out curves.json
    python tools/bench/distill_curves.py --plot curves.json --figure docs/3d-recovery.png

Prints a markdown table (PSNR at a few iterations, time, it/s) and writes every curve as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RUNS = [("sds", "voxel"), ("sjc", "voxel"), ("vsd", "voxel"), ("sds", "triplane"), ("sds", "nerfacto")]


def run(args) -> list[dict]:
    import torch

    from diff_3d.validation import recover

    torch.set_num_threads(args.threads)
    results = []
    chosen = [tuple(r.split(":")) for r in args.runs] if args.runs else RUNS
    for distiller, representation in chosen:
        start = time.perf_counter()
        rec = recover(distiller, representation, steps=args.steps, size=args.size, eval_every=args.eval_every)
        results.append(
            {
                "distiller": distiller,
                "representation": representation,
                "size": args.size,
                "steps": args.steps,
                "curve": [[step, values["psnr"]] for step, values in rec.record.curve],
                "seconds": time.perf_counter() - start,
                "iterations_per_s": rec.record.iterations_per_s,
            }
        )
        print(f"{distiller} on {representation}: {rec.psnr:.2f} dB after {args.steps} iterations", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
    return results


def table(results: list[dict]) -> str:
    marks = sorted({m for r in results for m in (200, 500, 1000, r["steps"]) if m <= r["steps"]})
    lines = [
        "| distiller | representation | " + " | ".join(f"PSNR @{m}" for m in marks) + " | first >= 25 dB | it/s |",
        "|---" * (len(marks) + 4) + "|",
    ]
    for r in results:
        at = dict((int(s), v) for s, v in r["curve"])
        first = next((s for s, v in r["curve"] if v >= 25), None)
        cells = [f"{at[m]:.1f}" if m in at else "" for m in marks]
        lines.append(
            f"| {r['distiller']} | {r['representation']} | " + " | ".join(cells) + f" | {first or '-'} | {r['iterations_per_s'] or 0:.1f} |"
        )
    return "\n".join(lines)


def plot(results: list[dict], figure: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for r in results:
        steps, values = zip(*r["curve"])
        ax.plot(steps, values, label=f"{r['distiller']} / {r['representation']}")
    ax.axhline(25, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR on 8 held-out views (dB)")
    ax.set_title(f"Recovering the blob scene from its exact prior, {results[0]['size']}x{results[0]['size']}")
    ax.legend(fontsize=8)
    fig.savefig(figure, dpi=100, facecolor="white")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", nargs="*", help="distiller:representation pairs (default: the docs' five)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the curves (rewritten after each run).")
    parser.add_argument("--plot", type=Path, default=None, help="Plot an existing JSON file instead of running.")
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    results = json.loads(args.plot.read_text()) if args.plot else run(args)
    print(table(results))
    if args.figure:
        plot(results, args.figure)


if __name__ == "__main__":
    main()
