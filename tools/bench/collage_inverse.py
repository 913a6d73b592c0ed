"""diff-collage composed with diff-inverse, from the command line alone: a 128x128 photo restored with
zoo:patches (32x32 windows) as a grid collage, under DDRM and DPS.

The photo is scikit-image's astronaut, the photo zoo:patches holds out of training, box-downsampled
4x to 128x128 (the training crops' coarsest scale). Two problems, each with one measurement shared
by every run (noise sigma_y = 0.05, seed 0, saved as y.npy): super-resolution x2 (average pooling)
and inpainting a 40x40 box that straddles four tiles. Each is solved by ``diffcore inverse solve``
with nothing but a prior spec, ``--prior 'collage:base=zoo:patches,graph=grid,rows=5,cols=5,
overlap=8,method=M'`` for DiffCollage, MultiDiffusion and the mixture, and, as the baseline, with
each 32x32 tile solved alone (``--prior zoo:patches``, one ``diffcore inverse solve --job`` over
the tiles' measurements) and stitched. The table gives PSNR against the photo, the pseudo-inverse
and bicubic upsampling (from the command's metrics.json), the seam score at the tile borders (rows
and columns 32, 64, 96: where independent tiles meet) and at the collage's own window borders, and
the seconds. A run that fails or gives a non-finite image is reported as such (a loss). DPS runs
twice on the canvas: with its default step, set on images of one window, and with the step scaled
to the canvas (``dps-scaled``, see :func:`solver_specs`); the tiles always take the default.

    python tools/bench/collage_inverse.py --work collage-inverse-work --picture docs/collage-inverse.png > collage-inverse.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

SIGMA_Y = 0.05
METHODS = {"DiffCollage": "diffcollage", "MultiDiffusion": "multidiffusion", "Mixture of Diffusers": "mixture"}
PROBLEMS = {"super-resolution x2": "sr:factor=2", "inpainting 40x40 box": "inpaint:box=(44,44,40,40)"}
BOX = (44, 44, 40, 40)
TILE, SIZE = 32, 128


def diffcore_cli() -> list[str]:
    exe = Path(sys.executable).with_name("diffcore")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "diffcore.cli"]


def read_png(path: Path) -> torch.Tensor:
    from PIL import Image

    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1


def write_png(path: Path, image: torch.Tensor) -> None:
    from PIL import Image

    array = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path)


def psnr(x: torch.Tensor, truth: torch.Tensor, where: torch.Tensor | None = None) -> float:
    """PSNR with images in [-1, 1] (data range 2), over the pixels ``where`` is True (all by default)."""
    err = (x - truth) ** 2
    mse = float(err.mean() if where is None else err[..., where].mean())
    return 10 * math.log10(4 / mse) if mse > 0 else float("inf")


def the_photo(work: Path) -> tuple[Path, torch.Tensor]:
    """The held-out photo at 128x128, as a PNG the command reads, and as the ground truth it scores against."""
    from diff_zoo.data import HELD_OUT_PHOTO, photo

    image = photo(HELD_OUT_PHOTO).to(torch.float32)  # uint8 (3, 512, 512)
    f = image.shape[-1] // SIZE
    small = image.reshape(3, SIZE, f, SIZE, f).mean((2, 4))
    path = work / "photo.png"
    write_png(path, small / 127.5 - 1)
    return path, read_png(path)


def solve(out: Path, prior: str, operator: str, solver: str, steps: int, measurement: Path, photo: Path) -> dict:
    """One ``diffcore inverse solve``: its metrics and restoration, or why it failed."""
    cmd = [*diffcore_cli(), "inverse", "solve", "--prior", prior, "--operator", operator, "--sigma-y", str(SIGMA_Y)]
    cmd += [
        "--solver",
        solver,
        "--steps",
        str(steps),
        "--measurement",
        str(measurement),
        "--input",
        str(photo),
        "--seed",
        "0",
        "--out",
        str(out),
    ]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1], "seconds": seconds}
    metrics = json.loads((out / "metrics.json").read_text())
    return {"metrics": metrics, "image": read_png(out / "restoration.png"), "seconds": seconds}


def tile_masks(problem: str) -> dict[tuple[int, int], torch.Tensor | None]:
    """The observed pixels of each tile (None: every pixel observed, or not an inpainting problem)."""
    out = {}
    top, left, h, w = BOX
    for r in range(SIZE // TILE):
        for c in range(SIZE // TILE):
            if not problem.startswith("inpainting"):
                out[(r, c)] = None
                continue
            mask = torch.ones(TILE, TILE)
            rows = slice(max(top - r * TILE, 0), max(min(top + h - r * TILE, TILE), 0))
            cols = slice(max(left - c * TILE, 0), max(min(left + w - c * TILE, TILE), 0))
            mask[rows, cols] = 0
            out[(r, c)] = mask
    return out


def solve_tiles(work: Path, problem: str, y: torch.Tensor, solver: str, steps: int) -> dict:
    """Every 32x32 tile solved alone with ``--prior zoo:patches`` (one job per distinct tile mask), stitched."""
    start = time.perf_counter()
    scale = SIZE // y.shape[-1]  # 2 for super-resolution x2, 1 for inpainting
    t = TILE // scale
    masks = tile_masks(problem)
    groups: dict[bytes, list[tuple[int, int]]] = {}
    for key, mask in masks.items():
        groups.setdefault(b"" if mask is None else mask.numpy().tobytes(), []).append(key)
    restored = torch.zeros(3, SIZE, SIZE)
    operator = PROBLEMS[problem] if not problem.startswith("inpainting") else "inpaint"
    for g, (_, keys) in enumerate(sorted(groups.items())):
        folder = work / f"tiles-{solver.replace(':', '-').replace('=', '')}-{g}"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "y").mkdir(parents=True)
        for r, c in keys:
            np.save(folder / "y" / f"tile-{r}-{c}.npy", y[0, :, r * t : (r + 1) * t, c * t : (c + 1) * t].numpy())
        options = {"prior": "zoo:patches", "operator": operator, "solver": solver, "steps": steps, "sigma_y": SIGMA_Y}
        if masks[keys[0]] is not None:
            write_png(folder / "mask.png", masks[keys[0]].expand(3, -1, -1) * 2 - 1)
            options["mask"] = str(folder / "mask.png")
        lines = ['task = "inverse solve"', 'out = "out"', "seed = 0", "[items]", 'folder = "y"', "[options]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
        (folder / "job.toml").write_text("\n".join(lines) + "\n")
        res = subprocess.run([*diffcore_cli(), "run", str(folder / "job.toml")], capture_output=True, text=True)
        if res.returncode != 0:
            return {
                "error": (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1],
                "seconds": time.perf_counter() - start,
            }
        for r, c in keys:
            restored[:, r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = read_png(folder / "out" / f"tile-{r}-{c}.png")
    return {"image": restored, "seconds": time.perf_counter() - start}


def solver_specs(name: str, steps: int) -> tuple[str, str]:
    """The solver spec for the 128x128 canvas and for a 32x32 tile.

    ``dps-scaled``: DPS steps by ``zeta grad ||r||^2 / ||r||``, which per pixel shrinks as one over the
    square root of the pixels, so its default ``zeta`` (``0.5 sqrt(1000 / steps)``, set on images of
    one window) is 4 times too small on a canvas of 16 windows' pixels; the canvas gets it times 4,
    the tiles keep the default (their size is the one it was set on)."""
    if name == "dps-scaled":
        return f"dps:zeta={0.5 * math.sqrt(1000 / steps) * SIZE / TILE:.4g}", "dps"
    return name, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a folder for the photo, measurements and results")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--overlap", type=int, default=8)
    parser.add_argument(
        "--solvers", default="ddrm,dps,dps-scaled", help="ddrm, dps (its default step), dps-scaled (the step scaled to the canvas)"
    )
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--picture", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    import diffcore
    from diff_collage import graphs, seam_score

    args.work.mkdir(parents=True, exist_ok=True)
    photo, truth = the_photo(args.work)
    n = (SIZE - TILE) // (TILE - args.overlap) + 1
    if TILE + (n - 1) * (TILE - args.overlap) != SIZE:
        raise SystemExit(f"overlap {args.overlap} does not tile {SIZE} with windows of {TILE}")
    windows = graphs.grid(n, n, TILE, args.overlap)
    tiles = graphs.grid(SIZE // TILE, SIZE // TILE, TILE, 0)
    print(
        f"Seam scores of the photo itself: {seam_score(truth[None], tiles):.2f} at the tile borders, "
        f"{seam_score(truth[None], windows):.2f} at the windows'.\n"
    )
    print(
        "| problem | solver | prior | PSNR (dB) | PSNR in the box (dB) | seam score, tile borders | seam score, window borders | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    top, left, h, w = BOX
    box = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    box[top : top + h, left : left + w] = True
    pictures = {}
    for problem in args.problems.split(","):
        spec = PROBLEMS[problem]
        op = diffcore.create("operator", spec, x_shape=(3, SIZE, SIZE), sigma_y=SIGMA_Y)
        y = op.measure(truth[None], torch.Generator().manual_seed(0))
        folder = args.work / problem.split()[0]
        folder.mkdir(exist_ok=True)
        np.save(folder / "y.npy", y[0].numpy())
        baselines_printed = False
        tiles_done: dict[str, dict] = {}
        for name in args.solvers.split(","):
            solver, tile_solver = solver_specs(name, args.steps)
            rows = {}
            for label, method in METHODS.items():
                prior = f"collage:base=zoo:patches,graph=grid,rows={n},cols={n},overlap={args.overlap},method={method}"
                rows[label] = solve(folder / f"{name}-{method}", prior, spec, solver, args.steps, folder / "y.npy", photo)
            if tile_solver not in tiles_done:
                tiles_done[tile_solver] = solve_tiles(folder, problem, y, tile_solver, args.steps)
            rows["tiles solved alone"] = tiles_done[tile_solver]
            first = next((r for r in rows.values() if "metrics" in r), None)
            if first is not None and not baselines_printed:
                m = first["metrics"]
                base = {"pseudo-inverse": m["pinv"]} | {b: v for b, v in m["baselines"].items() if v}
                for baseline, v in base.items():
                    inside = ""
                    if baseline == "pseudo-inverse" and problem.startswith("inpainting"):
                        inside = f"{psnr(torch.zeros_like(truth), truth, box):.2f}"  # the pseudo-inverse leaves the box at 0
                    print(f"| {problem} | | {baseline} | {v['psnr']:.2f} | {inside} | | | |")
                baselines_printed = True
            for label, r in rows.items():
                if "error" in r:
                    print(f"| {problem} | {name} | {label} | failed: {r['error']} | | | | {r['seconds']:.0f} |", flush=True)
                    continue
                image = r["image"]
                if not bool(torch.isfinite(image).all()):
                    print(f"| {problem} | {name} | {label} | non-finite | | | | {r['seconds']:.0f} |", flush=True)
                    continue
                own = seam_score(image[None], windows) if label != "tiles solved alone" else float("nan")
                print(
                    f"| {problem} | {name} | {label} | {psnr(image, truth):.2f} | "
                    f"{psnr(image, truth, box) if problem.startswith('inpainting') else float('nan'):.2f} | "
                    f"{seam_score(image[None], tiles):.2f} | "
                    f"{own:.2f} | {r['seconds']:.0f} |",
                    flush=True,
                )
                pictures[(problem, name, label)] = image
            pictures[(problem, "measurement")] = read_png(next(iter(folder.glob("*/measurement.png")))) if first is not None else None
    print(
        f"\nzoo:patches windows of {TILE}x{TILE}, grid {n}x{n} overlapping by {args.overlap}; {args.steps} network calls per solve, "
        f"sigma_y {SIGMA_Y}, seed 0; PSNR with images in [-1, 1] (data range 2), from the written PNGs."
    )
    if args.picture is not None:
        picture(pictures, truth, args.picture)


def picture(pictures: dict, truth: torch.Tensor, path: Path) -> None:
    """Rows: the problems under each solver; columns: the photo, the measurement, the tiles, the collages."""
    from diffcore.tour import encode_png, image_grid

    cells = []
    keys = sorted({(p, s) for (p, s, *_rest) in pictures if s != "measurement"}, key=lambda k: (list(PROBLEMS).index(k[0]), k[1]))
    columns = ["tiles solved alone", *METHODS]
    for problem, solver in keys:
        measured = pictures.get((problem, "measurement"))
        if measured is not None and measured.shape[-1] != SIZE:
            measured = measured.repeat_interleave(SIZE // measured.shape[-1], -1).repeat_interleave(SIZE // measured.shape[-2], -2)
        row = [truth, measured if measured is not None else torch.zeros_like(truth)]
        row += [pictures.get((problem, solver, c), torch.zeros_like(truth)) for c in columns]
        cells.extend(row)
    grid = image_grid(torch.stack(cells), nrow=2 + len(columns))
    path.write_bytes(encode_png(grid))


if __name__ == "__main__":
    main()
