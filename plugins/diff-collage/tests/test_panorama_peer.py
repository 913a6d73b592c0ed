"""Peer check: diffusers' MultiDiffusion panorama pipeline against our ``multidiffusion`` collage.

``StableDiffusionPanoramaPipeline`` (diffusers.pipelines.deprecated in diffusers 0.42) denoises
views of 64 latent cells with a stride of 8 (``get_views``, which counts 8 pixels per latent cell
whatever the VAE), steps each view with its DDIM scheduler and averages the stepped views. On the
tiny random Stable Diffusion (its UNet's ``sample_size`` set to the pipeline's view, 8 x 64 latent
cells: a panorama 8 cells high has one row of views), the same initial latents, prompt, guidance
and steps, our collage of the guided prior with ``method="multidiffusion"`` over a chain (a cycle
for ``circular_padding``) of windows 64 wide overlapping by 56, run by diffcore's DDIM sampler,
gives the same latents to 1e-5 of their largest value (measured: 1e-6).
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")
panorama = pytest.importorskip(
    "diffusers.pipelines.deprecated.stable_diffusion_panorama", reason="the installed diffusers has no StableDiffusionPanoramaPipeline"
)

VIEW, STRIDE = 64, 8  # the pipeline's get_views defaults, in latent cells
PROMPT, GUIDANCE, STEPS = "a mountain lake at dawn", 7.5, 5


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from diffcore.testing import save_tiny_stable_diffusion

    folder = save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))
    config = folder / "unet" / "config.json"
    settings = json.loads(config.read_text())
    settings["sample_size"] = [8, VIEW]  # the same weights; the window our adapter reads from the config
    config.write_text(json.dumps(settings))
    return folder


@pytest.fixture(scope="module")
def pipeline(folder):
    from diffusers import StableDiffusionPipeline

    parts = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False).components
    pipe = panorama.StableDiffusionPanoramaPipeline(**parts, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("circular", [False, True])
def test_multidiffusion_is_the_panorama_pipeline(folder, pipeline, circular):
    from diff_collage import collage, graphs
    from diffcore.adapters.stable_diffusion import load_stable_diffusion
    from diffcore.samplers import get_sampler

    width = 80  # latent cells: 3 views, or 10 wrapping ones with circular padding
    latents = torch.randn(1, 4, 8, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = pipeline(
            prompt=PROMPT,
            height=8 * 8,  # get_views divides by 8 whatever the VAE's factor (2 here): one row of views
            width=8 * width,
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            latents=latents.clone(),
            output_type="latent",
            circular_padding=circular,
        ).images
    views = pipeline.get_views(8 * 8, 8 * width, circular_padding=circular)
    guided = load_stable_diffusion(folder, prompt=PROMPT, guidance_scale=GUIDANCE)
    overlap = VIEW - STRIDE
    g = graphs.cycle(width // STRIDE, VIEW, overlap) if circular else graphs.chain((width - VIEW) // STRIDE + 1, VIEW, overlap)
    assert [(v[0], v[2]) for v in views] == [(0, st[0]) for st in g.starts]  # the same views, in latent cells
    prior = collage(guided, g, method="multidiffusion")
    with torch.no_grad():
        x = get_sampler("ddim")(prior, latents.clone(), prior.schedule.timesteps(STEPS))
    assert prior.calls == STEPS  # every view of a step in one batched call (the pipeline: one call per view)
    scale = float(ref.abs().max())
    assert float((ref - latents).abs().max()) > 1  # the latents moved far from where they started
    assert float((x - ref).abs().max()) <= 1e-5 * scale
    if not circular:  # the averaging matters: the first view denoised alone ends elsewhere
        first = get_sampler("ddim")(guided, latents[..., :VIEW].clone(), guided.schedule.timesteps(STEPS))
        assert float((first - ref[..., :VIEW]).abs().max()) > 1e-3 * scale
