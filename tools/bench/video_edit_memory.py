"""Peak memory of each video editor at 8, 32 and 64 frames: the bounded-memory table of docs/video.md.

For each editor and frame count, a fresh process (``python -m diff_video.editing.memory``) edits
the synthetic moving digit resized to ``--size`` pixels with ``--prior`` (zoo:digits, fully
convolutional, runs at 32 x 32 with self-attention at 8 x 8) in chunks of ``--chunk`` frames, and
reports how far its resident memory's peak rose above where it was before the edit (after a
warm-up edit; see diff_video.editing.memory). ``--chunk 0`` rows run the whole video as one chunk,
the unbounded way, for comparison.

    python tools/bench/video_edit_memory.py --frames 8,32,64 --chunk 8,0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="zoo:digits")
    parser.add_argument("--editors", default="per-frame,cross-frame,pix2video,fatezero,tune-a-video")
    parser.add_argument("--frames", default="8,32,64")
    parser.add_argument("--chunk", default="8,0")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--channels", type=int, default=1, help="channels of the frames (3 for Stable Diffusion)")
    args = parser.parse_args()
    rows = []
    for editor in args.editors.split(","):
        command = [sys.executable, "-m", "diff_video.editing.memory", "--prior", args.prior, "--editor", editor]
        command += [
            "--frames",
            args.frames,
            "--chunk",
            args.chunk,
            "--size",
            str(args.size),
            "--steps",
            str(args.steps),
            "--channels",
            str(args.channels),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        rows += [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        print(f"{editor}: done", file=sys.stderr, flush=True)
    frames = [int(f) for f in args.frames.split(",")]
    print("| editor | chunk | " + " | ".join(f"{f} frames (MB)" for f in frames) + " |")
    print("|---|---|" + "---|" * len(frames))
    for editor in args.editors.split(","):
        for chunk in (int(c) for c in args.chunk.split(",")):
            peaks = {r["frames"]: r["peak_growth_bytes"] for r in rows if r["editor"] == editor and r["chunk"] == chunk}
            cells = " | ".join(f"{peaks[f] / 2**20:.0f}" for f in frames)
            print(f"| {editor} | {chunk or 'whole video'} | {cells} |")


if __name__ == "__main__":
    main()
