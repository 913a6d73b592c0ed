"""What a distillation step costs beyond the network work it cannot avoid, and iterations per second per method.

For each prior and distiller, on the same render (a 32^3 voxel grid seen at 32x32, one camera),
interleaved and repeated, medians reported:

- ``bare``: the work any step of that method needs, written out by hand: render, map to the
  prior's space (resize, encode for a latent prior), the prior's (guided) prediction at one time
  (``K`` noisy copies for SJC; for VSD also the second model's prediction and its training step),
  and the backward pass through the render with that gradient;
- ``step``: the distiller's ``loss`` and ``update`` with the same render, and the backward pass.

Overhead is ``step / bare - 1`` on the fastest of the repeats (goal: at most 10%); on a machine
shared with other jobs the fastest repeats are the ones least disturbed, and the medians' ratio is
printed too. ``it/s`` is the whole loop
(:func:`diff_3d.distill.distill`: cameras, render, loss, backward, Adam, update) over ``--iterations``.

    python tools/bench/distill_overhead.py --repeats 20 --iterations 30
    python tools/bench/distill_overhead.py --device cuda --size 64      # on a GPU machine

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time

CASES = ("analytic-scene", "zoo:digits", "tiny-sd")


def build(case: str, folder: str, device: str):
    """The prior, its condition and the guidance scale of a case."""
    import diffcore
    from diff_3d.conditioning import condition
    from diffcore.devices import build_prior

    if case == "analytic-scene":
        prior = build_prior("analytic-scene", device="cpu")
        return prior, None, 1.0
    if case == "zoo:digits":
        prior = build_prior("zoo:digits", device=device)
        return prior, condition(prior, label=3), 3.0
    from diffcore.testing import save_tiny_stable_diffusion

    prior = diffcore.create("prior", "stable-diffusion", path=str(save_tiny_stable_diffusion(folder)), device=device)
    return prior, condition(prior, prompt="a photo of a cat"), 7.5


def bare_work(prior, distiller, name: str, scale: float):
    """The unavoidable work of one step of ``distiller``, by hand (see the module docstring)."""
    import torch

    from diff_3d.distillers.base import coefficients, predict_guided, to_prior_space, with_camera
    from diff_3d.distillers.vsd_models import ResidualDenoiser

    def run(rep, cond, camera, generator):
        images = rep.render(camera)
        z = to_prior_space(prior, images)
        c = with_camera(prior, cond, camera)
        k = distiller.draws if name == "sjc" else 1
        t = torch.full((z.shape[0] * k,), 0.5, dtype=torch.float64)
        eps = torch.randn((k * z.shape[0], *z.shape[1:]), generator=generator).to(z)
        alpha, sigma = coefficients(prior, t, eps)
        model = distiller.second_model(prior) if name == "vsd" else None
        with torch.no_grad():
            x_t = alpha * z.detach().repeat(k, 1, 1, 1) + sigma * eps
            with model.pretrained() if model is not None else contextlib.nullcontext():
                pred = predict_guided(prior, x_t, t, c, scale)
            g = (pred.eps - eps).reshape(k, *z.shape).mean(0)
            if model is not None:
                if isinstance(model, ResidualDenoiser):
                    g = g - model.eps(x_t, t, c, camera, prediction=pred if scale == 1.0 else None)
                else:
                    g = g - model.eps(x_t, t, c, camera)
        if model is not None:
            model.train_step(z.detach(), c, camera, generator)
        z.backward(gradient=g)

    return run


def measure(case: str, name: str, args, folder: str) -> dict:
    import torch

    import diffcore
    from diff_3d.cameras import CameraSampler, to_device
    from diff_3d.distill import distill
    from diff_3d.distillers.base import with_camera

    prior, cond, scale = build(case, folder, args.device)
    options = {"guidance_scale": scale} if scale != 1.0 else {}
    distiller = diffcore.create("distiller", name, **options)
    rep = diffcore.create("representation", "voxel", resolution=32).to(args.device)
    cameras = CameraSampler(size=args.size, fov=(50.0, 50.0))
    camera = to_device(cameras.sample(1, torch.Generator().manual_seed(0)), args.device)
    bare = bare_work(prior, distiller, name, scale)

    def step(generator):
        images = rep.render(camera)
        c = with_camera(prior, cond, camera)
        out = distiller.loss(prior, images, c, step=0, total_steps=1, generator=generator, camera=camera)
        out.loss.backward()
        distiller.update(prior, images.detach(), c, step=0, total_steps=1, generator=generator, camera=camera)

    def timed(fn) -> float:
        g = torch.Generator().manual_seed(0)
        rep.zero_grad(set_to_none=True)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(g)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(2):  # warm-up (and VSD's second model built)
        timed(step)
        timed(lambda g: bare(rep, cond, camera, g))
    steps, bares = [], []
    for _ in range(args.repeats):
        steps.append(timed(step))
        bares.append(timed(lambda g: bare(rep, cond, camera, g)))
    fresh = diffcore.create("distiller", name, **options)
    if name == "vsd":  # VSD adds adapters to a network once: a fresh prior for the loop
        prior, cond, scale = build(case, folder + "/again", args.device)
    loop = distill(
        prior,
        diffcore.create("representation", "voxel", resolution=32).to(args.device),
        fresh,
        steps=args.iterations,
        lr=0.05,
        cond=cond,
        cameras=cameras,
        generator=torch.Generator().manual_seed(1),
    )
    step_ms, bare_ms = min(steps) * 1e3, min(bares) * 1e3
    return {
        "prior": case,
        "distiller": name,
        "bare_ms": bare_ms,
        "step_ms": step_ms,
        "overhead": step_ms / bare_ms - 1,
        "median_overhead": statistics.median(steps) / statistics.median(bares) - 1,
        "it/s": loop.iterations_per_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--size", type=int, default=32, help="render size in pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--distillers", nargs="*", default=["sds", "sjc", "vsd"])
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for case in args.cases:
            for name in args.distillers:
                rows.append(measure(case, name, args, f"{folder}/{case}-{name}"))
                r = rows[-1]
                print(
                    f"{case} {name}: bare {r['bare_ms']:.1f} ms, step {r['step_ms']:.1f} ms, overhead {100 * r['overhead']:+.1f}%, "
                    f"{r['it/s']:.1f} it/s",
                    flush=True,
                )
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {args.threads} thread(s)"
    print(f"\n{args.size}x{args.size} renders of a 32^3 voxel grid, {device}; fastest of {args.repeats} interleaved repeats\n")
    print("| prior | distiller | bare work (ms) | distillation step (ms) | overhead | overhead of the medians | it/s (whole loop) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = (
            f"{r['bare_ms']:.1f} | {r['step_ms']:.1f} | {100 * r['overhead']:+.1f}% | {100 * r['median_overhead']:+.1f}% | {r['it/s']:.1f}"
        )
        print(f"| {r['prior']} | {r['distiller']} | {cells} |")


if __name__ == "__main__":
    main()
