"""docs/inverse-gmm.md, generated whole: diff-inverse's solvers on the Gaussian-mixture benchmark of Cardoso et al.
(MCGdiff, ICLR 2024), next to the authors' figures.

The reference figures (the MCGdiff authors' script, run unchanged on this kind of machine) are cell means over
20 random problems; they are written out in :data:`AUTHORS`. The measurements, each a part of one JSON file:

- ``problem``: every solver with the authors' settings where they have one (``diff_inverse.bench.gmm``'s
  ``settings="authors"``), new mixture weights per problem (``weights="problem"``), 20 problems, 2000 samples;
- ``block``: MCGdiff, DDRM and DPS under the authors' protocol (one weight vector per (d_x, steps) block),
  for several block seeds: how far one weight draw moves a cell mean;
- ``defaults``: every solver at its defaults (``settings="defaults"``), as a user calls ``diff_inverse.solve``
  with a batch of 2000 copies of y, 8 problems per cell;
- ``dx800``: MCGdiff, DDRM and DPS at d_x = 800 (the authors did not run it), 3 problems, 1000 samples;
- ``quick``: the ``--quick`` measurement, which the tests repeat to catch drift of the code behind the page.

    OMP_NUM_THREADS=1 python tools/bench/gmm_authors.py --measure gmm.json --part defaults      # ~15 min
    OMP_NUM_THREADS=1 python tools/bench/gmm_authors.py --measure gmm.json --part problem       # ~40 min
    OMP_NUM_THREADS=1 python tools/bench/gmm_authors.py --measure gmm.json --part block         # ~40 min
    OMP_NUM_THREADS=1 python tools/bench/gmm_authors.py --measure gmm.json --part dx800         # ~20 min
    OMP_NUM_THREADS=1 python tools/bench/gmm_authors.py --measure gmm.json --part quick         # seconds
    python tools/bench/gmm_authors.py --page gmm.json --out docs/inverse-gmm.md
    python tools/bench/gmm_authors.py --quick        # the quick measurement's table, as the page shows it

``--measure`` adds the part to the file (creating it). The page and its plots are written from the JSON file
alone; the measurements behind the committed page are tools/bench/results/gmm.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gmm.json"

# The authors' figures: (d_x, d_y, steps) -> solver -> (mean, 1.96 std / sqrt(20)); prior per (d_x, d_y)
AUTHORS = {
    (8, 1, 20): {"mcgdiff": (1.50, 0.33), "ddrm": (4.73, 1.29), "dps": (5.47, 1.62)},
    (8, 1, 100): {"mcgdiff": (1.17, 0.49), "ddrm": (3.90, 1.40), "dps": (3.27, 1.36)},
    (8, 2, 20): {"mcgdiff": (0.99, 0.37), "ddrm": (3.99, 1.05), "dps": (4.52, 1.26)},
    (8, 2, 100): {"mcgdiff": (0.45, 0.27), "ddrm": (2.78, 1.28), "dps": (1.31, 0.66)},
    (8, 4, 20): {"mcgdiff": (0.26, 0.05), "ddrm": (1.66, 0.75), "dps": (3.04, 1.00)},
    (8, 4, 100): {"mcgdiff": (0.69, 0.70), "ddrm": (1.60, 1.25), "dps": (1.27, 0.64)},
    (80, 1, 20): {"mcgdiff": (1.47, 0.48), "ddrm": (5.03, 1.05), "dps": (4.54, 1.11)},
    (80, 1, 100): {"mcgdiff": (2.10, 0.69), "ddrm": (6.16, 1.18), "dps": (3.76, 1.02)},
    (80, 2, 20): {"mcgdiff": (0.84, 0.39), "ddrm": (5.06, 1.38), "dps": (4.16, 1.52)},
    (80, 2, 100): {"mcgdiff": (0.61, 0.34), "ddrm": (8.56, 1.45), "dps": (3.43, 1.40)},
    (80, 4, 20): {"mcgdiff": (0.65, 0.65), "ddrm": (4.65, 1.28), "dps": (3.34, 1.44)},
    (80, 4, 100): {"mcgdiff": (0.37, 0.23), "ddrm": (6.82, 1.19), "dps": (1.56, 0.95)},
}
AUTHORS_PRIOR = {(8, 1): 7.60, (8, 2): 8.99, (8, 4): 9.34, (80, 1): 6.56, (80, 2): 8.80, (80, 4): 8.35}
AUTHORS_SECONDS = {(8, 20): (0.05, 0.05, 0.57), (8, 100): (0.29, 0.25, 2.64), (80, 20): (0.62, 0.90, 2.09), (80, 100): (3.17, 4.41, 8.65)}
COMPARED = ("mcgdiff", "ddrm", "dps")  # the solvers the authors ran

# What each part measures: d_x values, d_y values, steps, problems, samples, solvers (None: every default one), block seeds
PARTS = {
    "problem": {"dxs": (8, 80), "dys": (1, 2, 4), "steps": (20, 100), "problems": 20, "samples": 2000},
    "block": {"dxs": (8, 80), "dys": (1, 2, 4), "steps": (20, 100), "problems": 20, "samples": 2000, "solvers": COMPARED, "seeds": 4},
    "defaults": {"dxs": (8, 80), "dys": (1, 2, 4), "steps": (20, 100), "problems": 8, "samples": 2000, "extra": ("ddnm",)},
    "dx800": {"dxs": (800,), "dys": (1, 2, 4), "steps": (20, 100), "problems": 3, "samples": 1000, "solvers": COMPARED},
    "quick": {"dxs": (8,), "dys": (1,), "steps": (20,), "problems": 2, "samples": 200, "extra": ("ddnm",)},
}


def key(d_x: int, d_y: int, steps: int) -> str:
    return f"{d_x},{d_y},{steps}"


def unkey(text: str) -> tuple[int, int, int]:
    d_x, d_y, steps = (int(p) for p in text.split(","))
    return d_x, d_y, steps


def measure_part(part: str, log=print) -> dict:
    """One part of the page's measurements (see the module docstring), as plain JSON data."""
    import torch

    from diff_inverse.bench import gmm

    spec = PARTS[part]
    solvers = tuple(spec.get("solvers") or gmm.DEFAULT_SOLVERS) + tuple(spec.get("extra", ()))
    settings = "defaults" if part in ("defaults", "quick") else "authors"
    out = {
        "problems": spec["problems"],
        "samples": spec["samples"],
        "solvers": list(solvers),
        "settings": settings,
        "threads": torch.get_num_threads(),
    }
    cells: dict = {}
    for d_x in spec["dxs"]:
        for d_y in spec["dys"]:
            for steps in spec["steps"]:
                if part == "block":
                    cells[key(d_x, d_y, steps)] = [
                        {
                            n: gmm.summary(v)[0]
                            for n, v in gmm.run_cell(
                                d_x,
                                d_y,
                                steps,
                                problems=spec["problems"],
                                samples=spec["samples"],
                                solvers=solvers,
                                seed=seed,
                                weights="block",
                            )[0].items()
                        }
                        for seed in range(1, spec["seeds"] + 1)
                    ]
                else:
                    ess: dict = {}
                    with _quiet():
                        dist, secs = gmm.run_cell(
                            d_x, d_y, steps, problems=spec["problems"], samples=spec["samples"], solvers=solvers, settings=settings, ess=ess
                        )
                    cells[key(d_x, d_y, steps)] = {"sw": dist, "secs": secs, "ess": ess.get("mcgdiff", [])}
                log(f"{part}: done {key(d_x, d_y, steps)}")
    out["cells"] = cells
    if part == "block":
        out["seeds"] = spec["seeds"]
    return out


class _quiet:
    """Noiseless-only solvers (ddnm) warn on this benchmark's noisy y: that is measured, not shown."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


# -- the page ------------------------------------------------------------------------------------------------
def summary(values) -> tuple[float, float, float, int]:
    """Mean, 1.96 std / sqrt(n), median over the finite values, and how many were not finite."""
    ok = sorted(v for v in values if v is not None and math.isfinite(v))
    bad = len(values) - len(ok)
    if not ok:
        return math.nan, math.nan, math.nan, bad
    n = len(ok)
    mean = sum(ok) / n
    half = 1.96 * math.sqrt(sum((v - mean) ** 2 for v in ok) / (n - 1)) / math.sqrt(n) if n > 1 else 0.0
    median = ok[n // 2] if n % 2 else (ok[n // 2 - 1] + ok[n // 2]) / 2
    return mean, half, median, bad


def fmt(values) -> str:
    mean, half, median, bad = summary(values)
    if not math.isfinite(mean):
        return f"no finite result ({bad})"
    return f"{mean:.2f}±{half:.2f} ({median:.2f})" + (f" [{bad} non-finite]" if bad else "")


def verdict(mean: float, ref: float, half: float) -> str:
    if not math.isfinite(mean):
        return "no result"
    if mean < ref - half:
        return "yes, lower"
    return "yes, within" if mean <= ref + half else "**no, higher**"


def _sorted(cells) -> list[str]:
    return sorted(cells, key=unkey)


def cell_table(part: dict, solvers, *, authors: bool) -> list[str]:
    """Rows (d_x, d_y, steps), one column per solver (mean ± 95% (median)), the authors' figures beside ours."""
    head = ["d_x", "d_y", "steps", *solvers, "prior", "floor"] + (["authors: MCGdiff / DDRM / DPS / prior"] if authors else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in _sorted(part["cells"]):
        d_x, d_y, steps = unkey(k)
        sw = part["cells"][k]["sw"]
        row = [str(d_x), str(d_y), str(steps), *(fmt(sw[s]) for s in solvers), fmt(sw["prior"]), fmt(sw["floor"])]
        if authors:
            ref = AUTHORS.get((d_x, d_y, steps))
            row.append(
                " / ".join(f"{ref[s][0]:.2f}±{ref[s][1]:.2f}" for s in COMPARED) + f" / {AUTHORS_PRIOR[(d_x, d_y)]:.2f}" if ref else ""
            )
        lines.append("| " + " | ".join(row) + " |")
    return lines


def verdict_counts(part: dict) -> list[str]:
    """One line per compared solver: in how many cells ours is within the authors' interval or lower."""
    lines = []
    for s in COMPARED:
        verdicts = []
        for k in _sorted(part["cells"]):
            ref = AUTHORS.get(unkey(k), {}).get(s)
            if ref is not None and s in part["cells"][k]["sw"]:
                verdicts.append((k, verdict(summary(part["cells"][k]["sw"][s])[0], *ref)))
        if not verdicts:
            continue
        ok = [k for k, v in verdicts if v.startswith("yes")]
        lower = [k for k, v in verdicts if v == "yes, lower"]
        missed = [k.replace(",", "/") for k, v in verdicts if not v.startswith("yes")]
        lines.append(
            f"- `{s}`: within the authors' 95% interval or lower in {len(ok)} of {len(verdicts)} cells (lower in {len(lower)})"
            + (f"; above it at {', '.join(missed)}." if missed else ".")
        )
    return lines


def seconds_table(part: dict, solvers, per: int) -> list[str]:
    lines = [f"| d_x | steps | {' | '.join(solvers)} |", "|---|---|" + "---|" * len(solvers)]
    for d_x in sorted({unkey(k)[0] for k in part["cells"]}):
        for steps in sorted({unkey(k)[2] for k in part["cells"]}):
            keys = [k for k in part["cells"] if unkey(k)[0] == d_x and unkey(k)[2] == steps]
            row = []
            for s in solvers:
                t = [v for k in keys for v in part["cells"][k]["secs"].get(s, [])]
                row.append(f"{per * sum(t) / len(t) / part['samples']:.2f}" if t else "")
            if not keys:
                continue
            theirs = dict(zip(COMPARED, AUTHORS_SECONDS[(d_x, steps)])) if per == 1000 and (d_x, steps) in AUTHORS_SECONDS else {}
            row = [f"{r} / {theirs[s]:.2f}" if s in theirs and r else r for r, s in zip(row, solvers)]
            lines.append(f"| {d_x} | {steps} | " + " | ".join(row) + " |")
    return lines


def ess_line(part: dict) -> str:
    fractions = [v for k in part["cells"] for v in part["cells"][k]["ess"]]
    if not fractions:
        return ""
    fractions.sort()
    return (
        f"MCGdiff's smallest effective sample size over the steps of a problem (`MCGdiff.run(...).ess`), as a fraction of its "
        f"particles: median {fractions[len(fractions) // 2]:.2f}, lowest {fractions[0]:.2g} over the {len(fractions)} problems."
    )


def block_table(problem: dict, block: dict) -> list[str]:
    lines = [
        "| d_x | d_y | steps | solver | ours (per-problem weights): mean ± 95% (median) | ours, block protocol: range of cell means | "
        "authors: mean ± 95% | ours within their interval or lower? | their mean inside our block range? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in _sorted(problem["cells"]):
        d_x, d_y, steps = unkey(k)
        for name in [*COMPARED, "prior"]:
            values = problem["cells"][k]["sw"].get(name)
            if values is None:
                continue
            vals = [b[name] for b in block["cells"].get(k, []) if name in b]
            rng = f"{min(vals):.2f} – {max(vals):.2f}" if vals else ""
            ref, rhalf = (
                (AUTHORS_PRIOR.get((d_x, d_y), math.nan), math.nan)
                if name == "prior"
                else AUTHORS.get((d_x, d_y, steps), {}).get(name, (math.nan, math.nan))
            )
            known = math.isfinite(ref)
            their = "" if not known else (f"{ref:.2f}" if name == "prior" else f"{ref:.2f}±{rhalf:.2f}")
            ok = verdict(summary(values)[0], ref, rhalf) if known and name != "prior" else ""
            inside = "" if not (vals and known) else ("yes" if min(vals) <= ref <= max(vals) else "no")
            lines.append(f"| {d_x} | {d_y} | {steps} | {name} | {fmt(values)} | {rng} | {their} | {ok} | {inside} |")
    return lines


def settings_lines() -> list[str]:
    """The options each solver runs with under the authors' settings, read from the code."""
    import torch

    from diff_inverse.bench import gmm

    mixture = gmm.mixture(8, torch.Generator().manual_seed(0))  # any problem's: only data_var depends on it

    def shown(options: dict) -> str:
        return ", ".join(f"{k}=(the mixture's variance per coordinate)" if k == "data_var" else f"{k}={v!r}" for k, v in options.items())

    lines = []
    for name in gmm.DEFAULT_SOLVERS:
        at = {steps: {**gmm.solver_options(name, steps, 2000), **gmm.mixture_options(name, mixture, steps)} for steps in (20, 100)}
        text = shown(at[20]) or "its defaults"
        if at[20] != at[100]:
            text += " at 20 steps; " + shown(at[100]) + " at 100"
        lines.append(f"- `{name}`: {text}")
    return lines


def solver_rows() -> list[str]:
    """The registered solvers of diff-inverse: what they need and their options, from the code."""
    import dataclasses

    import diffcore
    from diff_inverse.solvers import SOLVERS
    from diff_inverse.solvers.fit import Needs

    lines = ["| solver | needs | options (defaults) |", "|---|---|---|"]
    for name, cls in SOLVERS.items():
        needs = Needs.of(cls)
        said = [
            w
            for w, flag in (
                ("SVD", needs.svd),
                ("linear", needs.linear),
                ("differentiable A", needs.differentiable),
                ("noiseless y", needs.noiseless),
            )
            if flag
        ]
        obj = diffcore.create("solver", name)
        options = ", ".join(f"`{f.name}={getattr(obj, f.name)!r}`" for f in dataclasses.fields(obj))
        lines.append(f"| `{name}` | {', '.join(said) or 'nothing'} | {options} |")
    return lines


INTRO = """# diff-inverse: the Gaussian-mixture benchmark with an exact posterior

The benchmark of Cardoso et al., "Monte Carlo guided diffusion for Bayesian linear inverse problems"
(MCGdiff, ICLR 2024), rebuilt in `diff_inverse.bench.gmm`: a 25-component Gaussian mixture prior, a random
linear measurement with noise, and the exact posterior (a mixture too, `GaussianMixturePrior.posterior`), so a
solver's samples can be compared with exact posterior samples. This page is generated whole by
`tools/bench/gmm_authors.py` from its measurements (tools/bench/results/gmm.json); a test repeats the
script's `--quick` measurement and checks the page against the file. Run one cell yourself with

```
diffcore inverse bench gmm --dx 8 --dy 1,2 --steps 20 --problems 5 --out FILE.md             # the authors' settings
diffcore inverse bench gmm --dx 8 --dy 1,2 --steps 20 --problems 5 --settings defaults --out FILE.md
```

## Setup (as the authors' script)

- Prior: 25 components in d_x dimensions, means (-8i, -8j, -8i, -8j, ...) for i, j in {-2..2}, identity
  covariances, weights z^2 normalised, z ~ N(0, I_25); left unscaled, as the authors do.
- Operator: A0 ~ N(0,1)^{d_y x d_x}, U S V = svd(A0), S replaced by sorted uniform(0,1) draws,
  A = U diag(S) V[:d_y]; sigma_y = uniform(0,1) * max(S); y = A x* + sigma_y eps with x* from the prior
  (`DenseLinear(A, sigma_y)`).
- Diffusion: the authors' DDPM (decreasing betas `linspace(0.02, 1e-4, 999)`, alpha_bar = cumprod([1, 1 - beta]))
  as a diffcore `DiscreteSchedule` with their time selection (`AuthorsSchedule`); "20 steps" is 20 network
  calls per sample. The denoiser is the mixture's exact one.
- Metric: sliced Wasserstein, 100 random directions (the same for every sample set of a problem), 1-D W1 per
  direction, against as many exact posterior samples. "floor": two independent exact sets; "prior": prior
  samples. Mean ± 1.96 std / sqrt(n) over the problems, median in brackets. Our problems are drawn from our own
  seeds, not the authors' problems: compare through the prior and floor columns too.
- float64, one torch thread, on a 2-core machine shared with other jobs (times are indicative)."""


def page(data: dict, *, plots: bool = True, out: Path | None = None) -> str:
    """The whole page from the measurements ``data`` (the parts present); with ``out``, the plots' links, and with
    ``plots`` the plots themselves, next to it."""
    from diff_inverse.bench import gmm

    lines = [INTRO, ""]
    if "defaults" in data:
        part = data["defaults"]
        solvers = part["solvers"]
        lines += [
            "## Every solver at its defaults, as a user calls it",
            "",
            f"`diff_inverse.solve(prior, operator, y, solver=name, steps=steps)` with no options, `y` a batch of {part['samples']} "
            f"copies of the measurement (so MCGdiff's copies share one filter of {part['samples']} particles), "
            f"{part['problems']} problems per cell (per-problem weights). SW, lower is better; the authors' figures (their settings, "
            "20 problems) on the right.",
            "",
            *cell_table(part, solvers, authors=True),
            "",
            "Against the authors' figures:",
            "",
            *verdict_counts(part),
            "",
            ess_line(part),
            "",
            f"Seconds per {part['samples']} samples (mean over the problems and d_y):",
            "",
            *seconds_table(part, solvers, part["samples"]),
            "",
        ]
    if "problem" in data:
        problem = data["problem"]
        solvers = problem["solvers"]
        lines += [
            "## Every solver with the authors' settings",
            "",
            "The settings, from `diff_inverse.bench.gmm.solver_options` (the authors' where they have one; eta 0.6 at 20 steps",
            "and 0.85 at 100 is their script's), and ours fitted to this mixture for the others:",
            "",
            *settings_lines(),
            "",
            f"{problem['problems']} problems per cell (per-problem weights), {problem['samples']} samples; the authors' figures",
            "(20 problems of their own) on the right.",
            "",
            *cell_table(problem, solvers, authors=True),
            "",
            "Against the authors' figures:",
            "",
            *verdict_counts(problem),
            "",
            ess_line(problem),
            "",
            "Seconds per 1000 samples (mean over the problems and d_y); ours / the authors' for the three they ran:",
            "",
            *seconds_table(problem, solvers, 1000),
            "",
        ]
        if out is not None:
            results = {unkey(k): (c["sw"], c["secs"]) for k, c in problem["cells"].items()}
            for d_x in sorted({k[0] for k in results}):
                png = out.with_name(f"{out.stem}-dx{d_x}.png")
                if plots:
                    gmm.plot({k: v for k, v in results.items() if k[0] == d_x}, solvers, png)
                lines += [f"![SW per cell, d_x = {d_x}]({png.name})", ""]
    if "problem" in data and "block" in data:
        problem, block = data["problem"], data["block"]
        lines += [
            "## Under the authors' protocol",
            "",
            "Their script draws the weights once per (d_x, steps) block, so all problems of a cell share one weight vector.",
            f"The range of our cell means over {block['seeds']} block seeds shows how far one weight draw moves a cell.",
            "",
            *block_table(problem, block),
            "",
        ]
    if "dx800" in data:
        part = data["dx800"]
        lines += [
            "## d_x = 800 (the authors did not run it)",
            "",
            f"{part['problems']} problems per cell, {part['samples']} samples, the authors' settings; wide intervals: read these as",
            "orders of magnitude.",
            "",
            *cell_table(part, part["solvers"], authors=False),
            "",
            "Seconds per 1000 samples:",
            "",
            *seconds_table(part, part["solvers"], 1000),
            "",
        ]
    if "quick" in data:
        lines += ["## The check the tests repeat (`--quick`)", "", *quick_table(data["quick"]), ""]
    lines += [
        "## The solvers",
        "",
        "From the registry: what each needs of an operator (`diff_inverse.solvers.fits`) and its options.",
        "",
        *solver_rows(),
        "",
    ]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def quick_table(part: dict) -> list[str]:
    return [
        f"d_x 8, d_y 1, 20 steps, {part['problems']} problems, {part['samples']} samples, every solver at its defaults:",
        "",
        *cell_table(part, part["solvers"], authors=False),
    ]


def quick_numbers(part: dict) -> dict[str, list[float]]:
    """The per-problem SW values of the quick measurement (what the test compares)."""
    return {s: [round(v, 6) for v in values] for c in part["cells"].values() for s, values in c["sw"].items()}


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).is_file() else {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", metavar="JSON", help="measure --part and add it to this file")
    parser.add_argument("--part", choices=sorted(PARTS))
    parser.add_argument("--page", metavar="JSON", help="write the page from these measurements (to --out)")
    parser.add_argument("--out", type=Path, help="the page (docs/inverse-gmm.md)")
    parser.add_argument("--quick", action="store_true", help="measure the quick part and print its table")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.quick:
        print("\n".join(quick_table(measure_part("quick", log))))
        return 0
    if args.measure:
        if not args.part:
            parser.error("--measure needs --part")
        data = load(args.measure)
        data[args.part] = measure_part(args.part, log)
        Path(args.measure).parent.mkdir(parents=True, exist_ok=True)
        Path(args.measure).write_text(json.dumps(data, indent=1) + "\n")
        return 0
    if args.page:
        if args.out is None:
            parser.error("--page needs --out")
        text = page(load(args.page), out=args.out)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
