"""Video editors on the synthetic moving, rotating digit (16 frames) with zoo:digits: the table of docs/video.md.

Each editor of diff_video.editing edits the held-out digits of ``--index`` (default three videos)
to ``--target``, under the same settings (DDIM inversion to strength 0.7 of 20 steps, one
fixed-point iteration, classifier-free guidance 3), and is measured with
diff_video.editing.metrics: the flow warp error (Farneback flow of the source), the mean
frame-to-frame difference, the digit classifier's agreement with the target, and the PSNR of the
low frequencies to the source. The last table averages the videos.

    python tools/bench/video_edit.py --index 2,0,4 --target 3
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    import diffcore
    from diff_video.editing import EditSettings, make_editor
    from diff_video.editing.bench import compare, markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="2,0,4", help="digits of the zoo's test split to animate")
    parser.add_argument("--target", type=int, default=3)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--strength", type=float, default=0.7)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--editors", default="per-frame,cross-frame,pix2video,fatezero")
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior = diffcore.create("prior", "zoo:digits")
    settings = EditSettings(steps=args.steps, strength=args.strength, guidance=args.guidance, refine=1)
    editors = {name: make_editor(name) for name in args.editors.split(",")}
    tables = []
    for index in (int(i) for i in args.index.split(",")):
        rows = compare(prior, editors, index=index, target=args.target, frames=args.frames, settings=settings)
        print(f"\ndigit {index} of the test split -> {args.target}\n\n{markdown(rows)}", flush=True)
        tables.append(rows)
    mean = []
    for k, row in enumerate(tables[0]):
        keys = [key for key in row if key not in ("editor", "video")]
        mean.append({"editor": row["editor"], **{key: sum(t[k][key] for t in tables) / len(tables) for key in keys}})
    print(f"\nmean over {len(tables)} videos\n\n{markdown(mean)}")


if __name__ == "__main__":
    main()
