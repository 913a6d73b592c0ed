"""Seam scores of every method on strips of the zoo's 32x32 texture and patch priors.

A strip is a chain of 5 windows (overlap 8 or 16); the seam score is the gradient energy across
window borders over that inside windows (1: borders look like anywhere else). Each method draws
the same samples (the same seed and starting noise): brick, grass and gravel for zoo:textures,
unconditional photo patches for zoo:patches; sequential outpainting is the baseline that generates
window after window. Also writes the pictures of docs/collage.md with ``--pictures DIR``.

    python tools/bench/collage_seams.py --n 8 --steps 20 --pictures docs > collage-seams.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import diffcore
from diff_collage import collage, graphs, outpaint, seam_score
from diffcore import Cond

METHODS = {
    "DiffCollage (crop separator)": {"method": "diffcollage", "separator": "crop"},
    "DiffCollage (mode separator)": {"method": "diffcollage", "separator": "mode"},
    "MultiDiffusion": {"method": "multidiffusion"},
    "Mixture of Diffusers": {"method": "mixture"},
    "sequential outpainting": None,
}


def draw(window, graph, options, n, steps, seed, cond):
    if options is None:
        return outpaint(window, graph, n=n, steps=steps, generator=torch.Generator().manual_seed(seed), cond=cond), graph.n_windows * steps
    prior = collage(window, graph, **options)
    x = diffcore.sample(prior, n, steps=steps, cond=cond, generator=torch.Generator().manual_seed(seed))
    return x, prior.calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="samples per texture (and patches)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pictures", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    textures, patches = diffcore.create("prior", "zoo:textures"), diffcore.create("prior", "zoo:patches")
    labels = torch.arange(3).repeat(args.n)
    print(
        "| prior | overlap | method | seam score | brick | grass | gravel | calls per step | seconds "
        "|\n|---|---|---|---|---|---|---|---|---|"
    )
    kept = {}
    for overlap in (8, 16):
        g = graphs.chain(5, 32, overlap)
        for name, options in METHODS.items():
            start = time.perf_counter()
            x, calls = draw(textures, g, options, len(labels), args.steps, args.seed, Cond(labels=labels))
            seconds = time.perf_counter() - start
            per = [seam_score(x[labels == k], g) for k in range(3)]
            kept[("textures", overlap, name)] = x
            print(
                f"| zoo:textures | {overlap} | {name} | {seam_score(x, g):.3f} | "
                + " | ".join(f"{p:.3f}" for p in per)
                + f" | {calls / args.steps:g} | {seconds:.0f} |",
                flush=True,
            )
    for overlap in (8, 16):
        g = graphs.chain(5, 32, overlap)
        for name, options in METHODS.items():
            start = time.perf_counter()
            x, calls = draw(patches, g, options, args.n, args.steps, args.seed, None)
            seconds = time.perf_counter() - start
            kept[("patches", overlap, name)] = x
            print(
                f"| zoo:patches | {overlap} | {name} | {seam_score(x, g):.3f} | | | | {calls / args.steps:g} | {seconds:.0f} |", flush=True
            )
    print(f"\n{args.n} samples per texture, {args.steps} DDIM steps, seed {args.seed}; chains of 5 windows of 32x32.")
    if args.pictures is not None:
        from diffcore.tour import encode_png, image_grid

        rows = [kept[("textures", 16, name)][2:3] for name in METHODS]  # the same gravel sample by each method
        grid = image_grid(torch.cat(rows), nrow=1)
        (args.pictures / "collage-strips.png").write_bytes(encode_png(grid.repeat(2, 0).repeat(2, 1)))
        rows = [kept[("patches", 16, name)][:1] for name in METHODS]
        grid = image_grid(torch.cat(rows), nrow=1)
        (args.pictures / "collage-patches.png").write_bytes(encode_png(grid.repeat(2, 0).repeat(2, 1)))


if __name__ == "__main__":
    main()
