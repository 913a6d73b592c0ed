"""Per-step wall time of diffcore's DDIM loop against diffusers' own scheduler loop.

Both loops drive the same randomly initialised ``UNet2DModel`` from the same starting noise:

- diffusers: ``scheduler.set_timesteps(steps)``, then per step ``unet(x, t)`` and
  ``scheduler.step(...)`` (what ``DDIMPipeline`` does, without its progress bar);
- diffcore: :func:`diffcore.samplers.ddim` over ``load_unet_prior(folder)``.

Repeats are interleaved (the order alternates); times are medians over repeats and the ratio
is the median of the per-pair ratios. A second pair of
rows swaps the UNet for a trivial network so that only the loop's own overhead is timed.
The two loops' outputs are compared as well (they agree bitwise on CPU).

    python tools/bench/ddim_loop.py --device cpu --size 32 --steps 50 --repeats 5

Prints a markdown table: ms/step for each loop and the ratio diffcore / diffusers (target <= 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _TrivialNet:
    """Stands in for the UNet to time the loop alone: eps = x / 2, in both calling conventions."""

    def __init__(self, unet):
        self.config, self.dtype = unet.config, unet.dtype

    def __call__(self, sample, timestep, class_labels=None, return_dict=True):
        from types import SimpleNamespace

        out = sample * 0.5
        return SimpleNamespace(sample=out) if return_dict else (out,)


def diffusers_loop(unet, scheduler, x, steps):
    import torch

    with torch.no_grad():
        scheduler.set_timesteps(steps, device=x.device)
        for t in scheduler.timesteps:
            out = unet(x, t).sample
            x = scheduler.step(out, t, x, eta=0.0).prev_sample
    return x


def diffcore_loop(prior, x, steps):
    from diffcore.samplers import ddim

    return ddim(prior, x, prior.schedule.timesteps(steps))


def bench(device: str = "cpu", size: int = 32, steps: int = 50, repeats: int = 5, batch: int = 4, channels: tuple = (32, 64)):
    import torch
    from diffusers import DDIMScheduler

    from diffcore.adapters.diffusers_prior import load_unet_prior
    from diffcore.testing import save_tiny_unet_pipeline

    device = torch.device(device)
    with tempfile.TemporaryDirectory() as tmp:
        save_tiny_unet_pipeline(tmp, sample_size=size, block_out_channels=channels, seed=0)
        prior = load_unet_prior(tmp, device=device)
        scheduler = DDIMScheduler.from_pretrained(tmp, subfolder="scheduler")
    unet = prior.unet
    x = torch.randn((batch, *prior.sample_shape), generator=torch.Generator().manual_seed(0)).to(device)

    rows = []
    for label, net in (("UNet", unet), ("trivial net (loop overhead)", _TrivialNet(unet))):
        prior.unet = net
        runs = {"diffusers": lambda net=net: diffusers_loop(net, scheduler, x, steps), "diffcore": lambda: diffcore_loop(prior, x, steps)}
        outputs = {name: fn() for name, fn in runs.items()}  # warm-up
        times = {name: [] for name in runs}
        for r in range(repeats):
            for name in list(runs)[:: 1 if r % 2 == 0 else -1]:
                _sync(device)
                start = time.perf_counter()
                runs[name]()
                _sync(device)
                times[name].append((time.perf_counter() - start) / steps * 1e3)
        diff = float((outputs["diffcore"] - outputs["diffusers"]).abs().max())
        ms = {name: statistics.median(v) for name, v in times.items()}
        # the ratio of each interleaved pair, then the median: robust to load that drifts between pairs
        ratio = statistics.median(c / d for c, d in zip(times["diffcore"], times["diffusers"]))
        rows.append((label, ms["diffusers"], ms["diffcore"], ratio, diff))
    prior.unet = unet
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--size", type=int, default=32, help="image size of the tiny UNet")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = bench(args.device, args.size, args.steps, args.repeats, args.batch)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"DDIM, {args.steps} steps, batch {args.batch} x 3 x {args.size} x {args.size}, median of {args.repeats} interleaved runs "
        f"({name}, torch {torch.__version__})\n"
    )
    print("| network | diffusers ms/step | diffcore ms/step | ratio diffcore/diffusers | max abs diff |")
    print("|---|---:|---:|---:|---:|")
    for label, d, c, ratio, diff in rows:
        print(f"| {label} | {d:.3f} | {c:.3f} | {ratio:.3f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
