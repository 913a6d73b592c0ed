"""Latent collages on the tiny random Stable Diffusion: windows in latent space, a prompt per window,
tiled decoding with circular wrap, built from a spec alone."""

from __future__ import annotations

import pytest
import torch

import diffcore
from diff_collage import collage, graphs

pytest.importorskip("diffusers")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    from diffcore.testing import save_tiny_stable_diffusion

    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def sd(sd_folder):
    return diffcore.create("prior", "stable-diffusion", path=str(sd_folder))


def test_a_loop_of_latent_windows_with_a_prompt_each(sd):
    assert sd.sample_shape == (4, 8, 8) and sd.image_shape == (3, 16, 16)
    conds = [diffcore.Cond(text=p) for p in ("a red chair", "a blue sky", "a green field")]
    loop = graphs.cycle(3, 8, 4)
    prior = collage(sd, loop, conds=conds, max_batch=4)
    assert prior.sample_shape == (4, 8, 12) and prior.image_shape == (3, 16, 24)
    x = diffcore.sample(prior, 2, steps=3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 16, 24) and bool(torch.isfinite(x).all()) and float(x.abs().max()) <= 1
    # 3 windows x 2 samples in batches of 4: 2 calls; 3 overlaps x 2 samples: 2 calls; per step
    assert prior.calls == 3 * 4


def test_tiled_decoding_matches_the_decoder_inside_each_tile(sd):
    prior = collage(sd, graphs.chain(2, 8, 4), method="multidiffusion")
    z = torch.randn(1, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tiled = prior.latent.decode(z)
        left = sd.latent.decode(z[..., :8])
        right = sd.latent.decode(z[..., 4:])
    assert tiled.shape == (1, 3, 16, 24)
    # outside the overlap only one tile covers a pixel: the decoder's own output there
    assert torch.allclose(tiled[..., :8], left[..., :8], atol=1e-5)
    assert torch.allclose(tiled[..., 16:], right[..., 8:], atol=1e-5)
    # inside, a blend of the two tiles' outputs
    lo, hi = torch.minimum(left[..., 8:], right[..., :8]), torch.maximum(left[..., 8:], right[..., :8])
    assert bool((tiled[..., 8:16] >= lo - 1e-5).all() and (tiled[..., 8:16] <= hi + 1e-5).all())


def test_a_latent_collage_from_a_spec(sd_folder):
    spec = f"collage:base='stable-diffusion:path={sd_folder}',graph=cycle,windows=3,overlap=4,prompts='a chair*2,a sky'"
    prior = diffcore.create("prior", spec)
    assert prior.sample_shape == (4, 8, 12) and [c.text for c in prior.conds] == ["a chair", "a chair", "a sky"]
    x = diffcore.sample(prior, 1, steps=2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (1, 3, 16, 24)


def test_a_guided_prior_takes_a_prompt_embedding_per_window(sd_folder):
    from diffcore.adapters.stable_diffusion import load_stable_diffusion
    from diffcore.errors import DiffcoreError

    guided = load_stable_diffusion(sd_folder, prompt="a chair", guidance_scale=3.0)
    chain = graphs.chain(2, 8, 4)
    with pytest.raises(DiffcoreError, match="each window's prompt must be one too"):
        collage(guided, chain, conds=[diffcore.Cond(text="a red chair"), diffcore.Cond(text="a sky")])
    sd = guided.prior
    prior = collage(guided, chain, conds=[diffcore.Cond(text=sd.encode_text("a red chair")), diffcore.Cond(text=sd.encode_text("a sky"))])
    x = diffcore.sample(prior, 1, steps=2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (1, 3, 16, 24) and bool(torch.isfinite(x).all())
