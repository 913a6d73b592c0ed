"""The 3-D Gaussians row of docs/3d.md: the blob scene recovered by SDS into ``gaussians``, and the time per iteration against nerfacto.

Two measurements, one thread:

1. the recovery check of :mod:`diff_3d.validation` (32x32, random orbits, eight held-out views) with
   ``gaussians`` (1000 of them; ``--spec gaussians:densify_every=100`` densifies), PSNR every ``--eval-every``
   iterations, each line written as it comes (``--out``, JSON lines);
2. seconds per iteration of the same loop for ``gaussians`` and ``nerfacto``, in interleaved blocks
   of ``--block`` iterations (so both see the same load on a shared machine), the median block.

    python tools/bench/gaussians_recovery.py --steps 1000 --out gaussians.jsonl
    python tools/bench/gaussians_recovery.py --steps 1000 --spec gaussians:densify_every=100 --skip-speed --out gaussians.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def recovery(args) -> None:
    import torch

    import diffcore
    from diff_3d.cameras import CameraSampler
    from diff_3d.distill import distill
    from diff_3d.metrics import view_psnr
    from diff_3d.validation import FOV

    prior = diffcore.create("prior", "analytic-scene", size=args.size, fov=FOV)
    cameras = CameraSampler(size=args.size, fov=(FOV, FOV))
    held_out = cameras.held_out(8)
    reference = prior.scene.render(held_out)
    rep = diffcore.create("representation", args.spec)
    start = time.perf_counter()

    def evaluate(step):
        rep.eval()
        try:
            psnr = view_psnr(rep, reference, held_out)
        finally:
            rep.train()
        line = {
            "spec": args.spec,
            "step": step,
            "psnr": round(psnr, 2),
            "gaussians": rep.count,
            "seconds": round(time.perf_counter() - start, 1),
        }
        with args.out.open("a") as f:
            f.write(json.dumps(line) + "\n")
        print(line, flush=True)
        return {"psnr": psnr}

    distill(
        prior,
        rep,
        diffcore.create("distiller", "sds"),
        steps=args.steps,
        lr=0.01,
        cameras=cameras,
        generator=torch.Generator().manual_seed(0),
        evaluate=evaluate,
        eval_every=args.eval_every,
    )


def speed(args) -> None:
    import torch

    import diffcore
    from diff_3d.cameras import CameraSampler
    from diff_3d.distill import distill
    from diff_3d.validation import FOV, LEARNING_RATES

    prior = diffcore.create("prior", "analytic-scene", size=args.size, fov=FOV)
    cameras = CameraSampler(size=args.size, fov=(FOV, FOV))
    reps = {name: diffcore.create("representation", name) for name in ("gaussians", "nerfacto")}
    times = {name: [] for name in reps}
    for block in range(args.blocks):
        for name, rep in reps.items():
            start = time.perf_counter()
            distill(
                prior,
                rep,
                diffcore.create("distiller", "sds"),
                steps=args.block,
                lr=LEARNING_RATES.get(name, 0.01),
                cameras=cameras,
                generator=torch.Generator().manual_seed(block),
            )
            times[name].append((time.perf_counter() - start) / args.block)
    line = {"seconds_per_iteration": {name: round(statistics.median(t), 4) for name, t in times.items()}, "blocks": args.blocks}
    with args.out.open("a") as f:
        f.write(json.dumps(line) + "\n")
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--spec", default="gaussians", help="the representation of the recovery, e.g. gaussians:densify_every=100")
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if not args.skip_recovery:
        recovery(args)
    if not args.skip_speed:
        speed(args)


if __name__ == "__main__":
    main()
