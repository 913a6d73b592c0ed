"""The pictures of docs/3d.md: the recovered blob scene and a 3-D zoo digit, as turntable GIFs and PNG strips.

- ``3d-scene.gif`` / ``3d-scene.png``: the blob scene (top / left) and a 32^3 voxel grid distilled from
  its exact view-conditioned prior by ``--distiller`` for ``--steps`` iterations at 32x32 (the settings
  of :func:`diff_3d.validation.recover`), seen all around;
- ``3d-digit.gif`` / ``3d-digit.png``: a voxel grid distilled from zoo:digits with label 3 by SDS
  (guidance 3), seen from the front within 25 degrees of azimuth, swept there and back.

    python tools/bench/distill_pictures.py --out docs --steps 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--distiller", default="sds")
    parser.add_argument("--digit-steps", type=int, default=300)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    import diffcore
    from diff_3d.cameras import CameraSampler
    from diff_3d.conditioning import condition
    from diff_3d.distill import distill
    from diff_3d.distillers import SDS
    from diff_3d.export import gif_bytes, turntable_frames
    from diff_3d.validation import recover
    from diffcore.tour import encode_png, image_grid

    torch.set_num_threads(1)
    big = lambda x: F.interpolate(x, scale_factor=3, mode="nearest")  # noqa: E731

    result = recover(args.distiller, "voxel", steps=args.steps, size=32, eval_every=args.steps)
    views = result.cameras.turntable(24)
    with torch.no_grad():
        scene, grid = result.prior.scene.render(views), turntable_frames(result.representation, views)
    (args.out / "3d-scene.gif").write_bytes(gif_bytes(big(torch.cat([scene, grid], dim=-1))))
    strip = torch.arange(0, 24, 4)
    (args.out / "3d-scene.png").write_bytes(encode_png(image_grid(big(torch.cat([scene[strip], grid[strip]])), nrow=len(strip))))
    print(f"scene: {result.psnr:.2f} dB on held-out views after {args.steps} {args.distiller} iterations")

    prior = diffcore.create("prior", "zoo:digits")
    cameras = CameraSampler(size=32, azimuth=(-25.0, 25.0), elevation=(-10.0, 15.0), fov=(50.0, 50.0), radius=(2.4, 2.6))
    digit = diffcore.create("representation", "voxel", resolution=32, background=-1.0)
    distill(
        prior,
        digit,
        SDS(guidance_scale=3.0),
        steps=args.digit_steps,
        lr=0.05,
        cond=condition(prior, label=3),
        cameras=cameras,
        generator=torch.Generator().manual_seed(3),
    )
    frames = turntable_frames(digit, cameras.turntable(16))
    (args.out / "3d-digit.gif").write_bytes(gif_bytes(big(frames)))
    (args.out / "3d-digit.png").write_bytes(encode_png(image_grid(big(frames[:8]), nrow=8)))
    print("digit: done")


if __name__ == "__main__":
    main()
