"""Peer check of diff-collage's MultiDiffusion: diffusers' ``StableDiffusionPanoramaPipeline`` against
``collage(..., method="multidiffusion")`` on the tiny random Stable Diffusion.

Both start from the same initial latents, with the same prompt, classifier-free guidance (7.5, empty
negative prompt), DDIM steps (the folder's scheduler: scaled-linear betas, leading spacing,
``steps_offset=1``) and views (the pipeline's ``get_views``: 64 latent cells, stride 8). The
tiny UNet's ``sample_size`` is set to the view so that our adapter's window is the pipeline's;
``get_views`` counts 8 pixels per latent cell whatever the VAE, so the pipeline is given
``height = 8 x`` and ``width = 8 x`` the latent canvas. Prints one row per layout: the largest
difference of the final latents, relative to their largest value, and the seconds each took.

    python tools/bench/collage_panorama_peer.py --steps 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

VIEW, STRIDE = 64, 8


def window_prior(folder: Path, size: tuple[int, int], prompt: str, guidance: float):
    """The guided tiny Stable Diffusion whose window (the UNet's ``sample_size``, the same weights) is ``size``."""
    from diffcore.adapters.stable_diffusion import load_stable_diffusion

    config = folder / "unet" / "config.json"
    settings = json.loads(config.read_text())
    settings["sample_size"] = list(size)
    config.write_text(json.dumps(settings))
    return load_stable_diffusion(folder, prompt=prompt, guidance_scale=guidance)


def graph_of(height: int, width: int, circular: bool):
    """Our graph of the pipeline's views of a (height, width) latent canvas."""
    from diff_collage import graphs

    rows = (height - VIEW) // STRIDE + 1 if height > VIEW else 1
    cols = width // STRIDE if circular else (width - VIEW) // STRIDE + 1
    size = (min(height, VIEW), VIEW)
    if rows == 1:
        build = graphs.cycle if circular else graphs.chain
        return build(cols, VIEW, VIEW - STRIDE), size
    return graphs.grid(rows, cols, VIEW, VIEW - STRIDE, wrap=circular), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from diffusers import StableDiffusionPipeline
    from diffusers.pipelines.deprecated.stable_diffusion_panorama import StableDiffusionPanoramaPipeline

    from diff_collage import collage
    from diffcore.samplers import get_sampler
    from diffcore.testing import save_tiny_stable_diffusion

    folder = save_tiny_stable_diffusion(Path(tempfile.mkdtemp()) / "tiny-sd")
    parts = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False).components
    pipe = StableDiffusionPanoramaPipeline(**parts, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompt, guidance = "a mountain lake at dawn", 7.5
    print("| latent canvas | views | circular padding | view batch | max abs. difference | relative | pipeline s | collage s |")
    print("|---|---|---|---|---|---|---|---|")
    cases = [((8, 96), False, 1), ((8, 96), False, 5), ((8, 96), True, 1), ((72, 80), False, 1), ((72, 80), True, 1)]
    for (h, w), circular, view_batch in cases:
        latents = torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(args.seed))
        views = pipe.get_views(8 * h, 8 * w, circular_padding=circular)
        start = time.perf_counter()
        try:
            with torch.no_grad():
                ref = pipe(
                    prompt=prompt,
                    height=8 * h,
                    width=8 * w,
                    num_inference_steps=args.steps,
                    guidance_scale=guidance,
                    latents=latents.clone(),
                    output_type="latent",
                    circular_padding=circular,
                    view_batch_size=view_batch,
                ).images
            failure = None
        except Exception as exc:  # the pipeline's own failure is a finding, reported in the table
            ref, failure = None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
        pipe_s = time.perf_counter() - start
        g, size = graph_of(h, w, circular)
        prior = collage(window_prior(folder, size, prompt, guidance), g, method="multidiffusion")
        start = time.perf_counter()
        with torch.no_grad():
            x = get_sampler("ddim")(prior, latents.clone(), prior.schedule.timesteps(args.steps))
        ours_s = time.perf_counter() - start
        label = f"{h}x{w}"
        if ref is None:
            print(
                f"| {label} | {len(views)} | {circular} | {view_batch} | pipeline fails: {failure} | | {pipe_s:.1f} | {ours_s:.1f} |",
                flush=True,
            )
            continue
        diff = float((x - ref).abs().max())
        rel = diff / float(ref.abs().max())
        print(f"| {label} | {len(views)} | {circular} | {view_batch} | {diff:.2e} | {rel:.1e} | {pipe_s:.1f} | {ours_s:.1f} |", flush=True)
    print(f"\n{args.steps} DDIM steps, guidance {guidance}, seed {args.seed}; windows of {VIEW} latent cells, stride {STRIDE}.")


if __name__ == "__main__":
    main()
