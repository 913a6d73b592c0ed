"""Erase one digit from zoo:digits and measure it: the numbers and the grid of docs/safety.md.

For each method, from the shipped zoo:digits: erase the digit (``diff_safety.erasure.erase``,
default settings), then :func:`diff_safety.erasure.evaluate.measure_digits` (100 samples per
class, 25 DDIM steps, the zoo's classifier; guidance scales 1 to 5; the null condition) and a
before/after grid. Prints a markdown table per method and writes ``METHOD.json`` and
``METHOD.png`` to ``--out``; with ``--results DIR`` also the tour's ``erasure.json`` and
``erasure.png`` (of the first method).

    OMP_NUM_THREADS=1 python tools/bench/safety_erasure.py --concept 3 --methods esd-x,esd-u,ablation --out build/erasure
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


def run(method: str, concept: int, out: Path, steps: int | None) -> dict:
    import diffcore
    from diff_safety.erasure import ErasureSettings, erase
    from diff_safety.erasure.evaluate import before_after_grid, measure_digits
    from diffcore.training import frozen_copy

    prior = diffcore.create("prior", "zoo:digits")
    original = frozen_copy(prior)
    start, cpu = time.perf_counter(), time.process_time()
    settings = ErasureSettings(method=method) if steps is None else ErasureSettings(method=method, steps=steps)
    result = erase(prior, concept, settings=settings, progress="log")
    erase_time = time.perf_counter() - start
    figures = measure_digits(original, result.prior, concept)
    before_after_grid(figures, out / f"{method}.png")
    figures.pop("_samples")
    figures.update(
        method=method,
        selection=result.selection,
        erase_time_s=round(erase_time, 1),
        total_time_s=round(time.perf_counter() - start, 1),
        cpu_time_s=round(time.process_time() - cpu, 1),
        **result.info,
    )
    (out / f"{method}.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def markdown(f: dict) -> str:
    c = f["concept"]
    lines = [
        f"**{f['method']}** ({f['selection']}, {f['trained_values']} values trained, {f['steps']} steps; erase {f['erase_time_s']} s, "
        f"with the measurement {f['total_time_s']} s wall, {f.get('cpu_time_s', '?')} s CPU)",
        "",
        "| class | " + " | ".join(str(k) for k in range(10)) + " |",
        "|---|" + "---|" * 10,
        "| before | " + " | ".join(f"{100 * r:.0f}" for r in f["rates_before"]) + " |",
        "| after | " + " | ".join(f"**{100 * r:.0f}**" if k == c else f"{100 * r:.0f}" for k, r in enumerate(f["rates_after"])) + " |",
        "",
        f"Frechet distance of the other classes to their test digits: {f['frechet_others_before']} before, {f['frechet_others_after']} "
        f"after ({100 * f['frechet_change']:+.1f} %); largest drop of another class {100 * f['largest_drop_other_class']:.1f} points.",
        "",
        "| class "
        + str(c)
        + " labelled "
        + str(c)
        + " (%) | "
        + " | ".join(f"guidance {s}" for s in f["guided_after"])
        + " | null condition |",
        "|---|" + "---|" * (len(f["guided_after"]) + 1),
        "| before | "
        + " | ".join(f"{100 * v:.0f}" for v in f["guided_before"].values())
        + f" | {100 * f.get('null_before', float('nan')):.1f} |",
        "| after | "
        + " | ".join(f"{100 * v:.0f}" for v in f["guided_after"].values())
        + f" | {100 * f.get('null_after', float('nan')):.1f} |",
    ]
    return "\n".join(lines)


def tour_files(f: dict, grid: Path, results: Path) -> None:
    c = f["concept"]
    summary = (
        f"Digit {c} erased from zoo:digits with {f['method']} ({f['selection']}, {f['steps']} steps): the zoo's classifier labels "
        f"class-{c}-conditioned samples as {c} in {100 * f['rates_after'][c]:.0f} % (before: {100 * f['rates_before'][c]:.0f} %); the "
        "other "
        f"classes lose at most {100 * f['largest_drop_other_class']:.0f} points and their Frechet distance changes by "
        f"{100 * f['frechet_change']:+.1f} %."
    )
    table = [
        {"class": k, "before %": round(100 * f["rates_before"][k], 1), "after %": round(100 * f["rates_after"][k], 1)} for k in range(10)
    ]
    record = {
        "summary": summary,
        "caption": f"Samples of each class from the same noise, before and after erasing {c} ({f['method']})",
        "table": table,
        "figures": f,
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / "erasure.json").write_text(json.dumps(record, indent=2) + "\n")
    shutil.copyfile(grid, results / "erasure.png")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concept", type=int, default=3)
    parser.add_argument("--methods", default="esd-x")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--results", type=Path, default=None, help="Also write the tour's erasure.json / erasure.png here (first method).")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, method in enumerate(args.methods.split(",")):
        figures = run(method, args.concept, args.out, args.steps)
        print(markdown(figures), flush=True)
        print(flush=True)
        if i == 0 and args.results is not None:
            tour_files(figures, args.out / f"{method}.png", args.results)


if __name__ == "__main__":
    main()
