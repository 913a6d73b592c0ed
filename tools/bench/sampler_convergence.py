"""The samplers against exact samples of a Gaussian mixture: the table of docs/benchmarks.md.

The 25-component grid mixture of Cardoso et al. (2024) in d = 2, 8 and 80 dimensions, scaled to
unit standard deviation per coordinate (so a DDPM prior's noise at t = 1 fits it), with the
mixture's exact denoiser and the DDPM linear schedule (1000 steps). Each cell: the sliced
Wasserstein distance (200 directions, seed 7) between 2000 samples of ``diffcore.sample`` (seed 1,
the sampler's defaults, the prior's exact marginal as the start) and 2000 exact samples (seed 100);
"floor" is the mean distance between three pairs of exact sample sets. Every cell depends only on
(d, sampler, steps), so ``--quick`` (d = 2, 5 and 10 steps) prints cells of the full table, which the
test compares with the page.

    OMP_NUM_THREADS=1 python tools/bench/sampler_convergence.py                 # the table, ~2 min
    OMP_NUM_THREADS=1 python tools/bench/sampler_convergence.py --page docs/benchmarks.md   # and into the page
    python tools/bench/sampler_convergence.py --quick
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from pathlib import Path

DIMS = (2, 8, 80)
SAMPLERS = (("ddpm", "ddpm"), ("ddim", "ddim / euler"), ("heun", "heun"), ("dpm++2m", "dpm++2m"))  # euler is ddim with eta 0
STEPS = (5, 10, 20, 50, 100)
N = 2000
BEGIN, END = "<!-- sampler-convergence begin -->", "<!-- sampler-convergence end -->"


def grid_mixture(d: int):
    import torch

    from diffcore.priors import GaussianMixturePrior

    g = torch.Generator().manual_seed(0)
    ij = torch.tensor(list(itertools.product(range(-2, 3), repeat=2)), dtype=torch.float64)
    means = (-8.0 * ij).repeat(1, (d + 1) // 2)[:, :d]
    weights = torch.randn(25, generator=g, dtype=torch.float64) ** 2
    scale = (64.0 * 2 + 1) ** 0.5  # the unscaled mixture's standard deviation per coordinate
    return GaussianMixturePrior(means / scale, weights, torch.full((25, d), 1 / scale**2))


def measure(dims=DIMS, steps_list=STEPS) -> dict:
    """``{d: {"floor": float, sampler: {steps: SW}}}``."""
    import torch

    import diffcore
    from diffcore.metrics import sliced_wasserstein

    out = {}
    for d in dims:
        prior = grid_mixture(d)
        exact = [prior.sample(N, torch.Generator().manual_seed(100 + i)) for i in range(7)]
        floor = (
            sum(
                float(sliced_wasserstein(exact[1 + 2 * i], exact[2 + 2 * i], n_dirs=200, generator=torch.Generator().manual_seed(i)))
                for i in range(3)
            )
            / 3
        )
        cells: dict = {"floor": floor}
        for name, _ in SAMPLERS:
            cells[name] = {}
            for steps in steps_list:
                x = diffcore.sample(prior, N, steps=steps, sampler=name, generator=torch.Generator().manual_seed(1))
                cells[name][steps] = float(sliced_wasserstein(x, exact[0], n_dirs=200, generator=torch.Generator().manual_seed(7)))
        out[d] = cells
    return out


def table(results: dict, steps_list=STEPS) -> str:
    lines = ["| d | floor | sampler | " + " | ".join(f"{s} steps" if i == 0 else str(s) for i, s in enumerate(steps_list)) + " |"]
    lines.append("|---|---:|---|" + "---:|" * len(steps_list))
    for d, cells in results.items():
        for k, (name, label) in enumerate(SAMPLERS):
            floor = f"{cells['floor']:.3f}" if k == 0 else ""
            lines.append(f"| {d} | {floor} | {label} | " + " | ".join(f"{cells[name][s]:.3f}" for s in steps_list) + " |")
    return "\n".join(lines) + "\n"


def cells_of(text: str) -> dict[tuple[int, str, int], str]:
    """The page's table as ``{(d, sampler label, steps): printed value}`` (and ``(d, "floor", 0)``)."""
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = [r.strip().strip("|").split("|") for r in block.strip().splitlines() if r.startswith("|")]
    head = [c.strip().split()[0] for c in rows[0]]
    steps = [int(h) for h in head[3:]]
    out, d = {}, None
    for r in rows[2:]:
        r = [c.strip() for c in r]
        d = int(r[0]) if r[0] else d
        if r[1]:
            out[(d, "floor", 0)] = r[1]
        for s, v in zip(steps, r[3:]):
            out[(d, r[2], s)] = v
    return out


def write_page(path: Path, text_table: str) -> None:
    page = path.read_text()
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} block")
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    path.write_text(pattern.sub(lambda _: BEGIN + "\n" + text_table + END, page))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="d = 2, 5 and 10 steps: cells of the full table")
    parser.add_argument("--page", type=Path, help="write the table into this page (between its markers)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    dims, steps = ((2,), (5, 10)) if args.quick else (DIMS, STEPS)
    text = table(measure(dims, steps), steps)
    print(text, end="")
    if args.page:
        write_page(args.page, text)
        print(f"wrote {args.page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
