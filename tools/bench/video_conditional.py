"""Reconstruction guidance against replacement on held-out moving digits (docs/video.md's table).

Runs :func:`diff_video.bench.run` on zoo:moving-digits: interpolation, extension and
super-resolution of held-out clips, each by replacement and by reconstruction guidance at a few
weights, with the video prior and with its image-only baseline, plus each task's trivial estimate;
PSNR of the made frames and the digit classifier's agreement.

    python tools/bench/video_conditional.py --clips 8 --steps 20 --json out.json

Prints a markdown table (and writes the rows as JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default="2,5", help="reconstruction guidance weights with the video prior, comma-separated")
    parser.add_argument("--image-weights", default="5", help="the same with the image-only prior")
    parser.add_argument("--tasks", default="interpolation,extension,super-resolution")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from diff_video.bench import markdown, run

    weights = tuple(float(w) for w in args.weights.split(","))
    tasks = tuple(args.tasks.split(","))
    result = run(
        n=args.clips,
        steps=args.steps,
        seed=args.seed,
        weights=weights,
        tasks=tasks,
        log=lambda row: print(row, file=sys.stderr, flush=True),
    )
    print(json.dumps(result["protocol"]))
    print(markdown(result["rows"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
