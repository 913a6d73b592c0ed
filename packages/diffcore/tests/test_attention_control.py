"""diffcore.attention.control and the base processor: bit-identical to no processor, exact restore, selection."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffusers import UNet2DConditionModel, UNet2DModel, UNet3DConditionModel  # noqa: E402
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0  # noqa: E402

import diffcore  # noqa: E402
from diffcore import Cond  # noqa: E402
from diffcore.adapters.diffusers_prior import load_unet_prior  # noqa: E402
from diffcore.adapters.stable_diffusion import load_stable_diffusion  # noqa: E402
from diffcore.attention import AttentionCall, AttentionProcessor, Chain, Select, control  # noqa: E402
from diffcore.errors import DiffcoreError  # noqa: E402
from diffcore.layers import AttentionLayer, attention_layers  # noqa: E402
from diffcore.testing import save_tiny_stable_diffusion, save_tiny_unet_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture(scope="module")
def unet_folder(tmp_path_factory):
    return save_tiny_unet_pipeline(tmp_path_factory.mktemp("tiny-unet") / "unet", sample_size=16)


@pytest.fixture(scope="module")
def sd_unet(sd_folder):
    return UNet2DConditionModel.from_pretrained(sd_folder, subfolder="unet").eval()


@pytest.fixture(scope="module")
def pixel_unet(unet_folder):
    return UNet2DModel.from_pretrained(unet_folder, subfolder="unet").eval()


def _sd_inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 8, 8, generator=g), torch.randn(batch, 77, 16, generator=g)


@torch.no_grad()
def _sd(unet, x, text):
    return unet(x, 500, encoder_hidden_states=text).sample


def _processors(network):
    return {layer.name: layer.module.processor for layer in attention_layers(network)}


class Explicit(AttentionProcessor):
    """Computes the probabilities explicitly and leaves them alone."""

    def needs_probabilities(self, call):
        return True


def test_identity_processor_is_bit_identical_on_sd_and_pixel_unets(sd_unet, pixel_unet):
    x, text = _sd_inputs()
    plain = _sd(sd_unet, x, text)
    assert {type(p) for p in _processors(sd_unet).values()} == {AttnProcessor2_0}
    with control(sd_unet, AttentionProcessor()) as handle:
        assert len(handle.layers) == len(attention_layers(sd_unet))
        assert torch.equal(_sd(sd_unet, x, text), plain)
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = pixel_unet(pixels, 10).sample
        with control(pixel_unet, AttentionProcessor()):
            assert torch.equal(pixel_unet(pixels, 10).sample, plain)
        # the explicit softmax(QK^T) path: rounding only
        with control(pixel_unet, Explicit()):
            explicit = pixel_unet(pixels, 10).sample
    assert torch.allclose(explicit, plain, rtol=0, atol=1e-5 * float(plain.abs().max()))


def test_identity_on_priors_and_unet3d_temporal_layers(sd_folder, unet_folder):
    prior = load_unet_prior(unet_folder)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    plain = prior.predict(x, 0.5)
    with control(prior, AttentionProcessor()):
        inside = prior.predict(x, 0.5)
    assert torch.equal(inside.eps, plain.eps) and torch.equal(inside.x0, plain.x0)

    guided = load_stable_diffusion(sd_folder, prompt="a cat", guidance_scale=3.0)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    plain = guided.predict(latents, 0.7)
    with control(guided, AttentionProcessor(), select="cross") as handle:
        assert all(layer.name.endswith("attn2") for layer in handle.layers)
        assert torch.equal(guided.predict(latents, 0.7).eps, plain.eps)

    torch.manual_seed(0)
    unet3d = UNet3DConditionModel(
        sample_size=8,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=8,
        attention_head_dim=4,
        norm_num_groups=4,
    ).eval()
    video, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 5, 8)
    with torch.no_grad():
        plain = unet3d(video, 10, encoder_hidden_states=text).sample
        with control(unet3d, AttentionProcessor(), select="temporal") as handle:
            assert {layer.kind for layer in handle.layers} == {"temporal"}
            assert torch.equal(unet3d(video, 10, encoder_hidden_states=text).sample, plain)


class Boom(AttentionProcessor):
    def edit_keys_values(self, call, query, key, value):
        raise RuntimeError("boom")


def test_restores_exactly_on_exit_on_error_and_when_nested(sd_unet):
    before = _processors(sd_unet)
    x, text = _sd_inputs()
    plain = _sd(sd_unet, x, text)
    outer, inner = AttentionProcessor(), Explicit()
    with control(sd_unet, outer, select="cross"):
        with control(sd_unet, inner, select=Select(block="up")) as nested:
            now = _processors(sd_unet)
            for name, p in now.items():
                expected = inner if name.startswith("up_blocks") else outer if name.endswith("attn2") else before[name]
                assert p is expected, name
            assert nested.active and inner.attached
        assert not nested.active and not inner.attached and nested.processors == {}
        now = _processors(sd_unet)
        assert all(now[n] is (outer if n.endswith("attn2") else before[n]) for n in now)
    assert all(p is before[n] for n, p in _processors(sd_unet).items())
    assert not outer.attached

    boom = Boom()
    with pytest.raises(RuntimeError, match="boom"):
        with control(sd_unet, boom):
            _sd(sd_unet, x, text)
    assert all(p is before[n] for n, p in _processors(sd_unet).items())
    assert not boom.attached
    assert torch.equal(_sd(sd_unet, x, text), plain)


def test_factory_gets_each_layer_and_its_processors_are_freed(sd_unet):
    made: list[weakref.ref] = []
    seen: list[AttentionLayer] = []

    class Counting(AttentionProcessor):
        def __init__(self, layer):
            super().__init__()
            self.layer, self.calls = layer, []

        def edit_keys_values(self, call: AttentionCall, query, key, value):
            assert call.layer is self.layer
            self.calls.append(call.step)
            return key, value

    def factory(layer):
        seen.append(layer)
        p = Counting(layer)
        made.append(weakref.ref(p))
        return p

    x, text = _sd_inputs()
    with control(sd_unet, factory, select=Select(kind="self", resolution=1)) as handle:
        _sd(sd_unet, x, text)
        _sd(sd_unet, x, text)
        assert [p.calls for p in handle.processors.values()] == [[0, 1]] * len(handle.layers)
        assert len({id(p) for p in handle.processors.values()}) == len(handle.layers)
    assert [layer.name for layer in seen] == [layer.name for layer in handle.layers]
    assert all(layer.kind == "self" and layer.resolution == 1 for layer in seen) and len(seen) == 3
    gc.collect()
    assert made and all(ref() is None for ref in made)


def test_selection_by_kind_resolution_block_name_and_predicate(sd_unet):
    every = attention_layers(sd_unet)

    def picked(select):
        return [layer.name for layer in control(sd_unet, AttentionProcessor(), select=select).layers]

    assert picked("cross") == [layer.name for layer in every if layer.name.endswith("attn2")]
    assert picked(Select(resolution=2)) == [layer.name for layer in every if layer.name.startswith("mid_block")]
    assert picked(Select(kind=("self", "cross"), block="up")) == [layer.name for layer in every if layer.name.startswith("up_blocks")]
    assert picked(Select(name="*attentions.1.*attn1")) == ["up_blocks.1.attentions.1.transformer_blocks.0.attn1"]
    assert picked(lambda layer: layer.block == "down") == [layer.name for layer in every if layer.name.startswith("down_blocks")]
    with pytest.raises(
        DiffcoreError,
        match=(
            rf"picks no attention layer of UNet2DConditionModel, which has {len(every)} attention layers of kinds cross, self at "
            r"resolutions 1, 2$"
        ),
    ):
        control(sd_unet, AttentionProcessor(), select="temporal")
    with pytest.raises(DiffcoreError, match="unknown attention layer kind 'crosss'; expected one of self, cross, temporal"):
        Select(kind="crosss")
    with pytest.raises(DiffcoreError, match="has no network"):
        control(diffcore.create("prior", "gmm", means=[[0.0]]), AttentionProcessor())


def test_one_object_per_active_control_and_one_entry(sd_unet):
    p = AttentionProcessor()
    handle = control(sd_unet, p, select="cross")
    with handle:
        with pytest.raises(DiffcoreError, match="already installed by an active attention control"):
            with control(sd_unet, p, select="self"):
                pass
    with pytest.raises(DiffcoreError, match="entered once"):
        with handle:
            pass
    with control(sd_unet, p):  # free again after exit
        pass


def test_diffusers_processor_and_chain(sd_unet):
    x, text = _sd_inputs()
    plain = _sd(sd_unet, x, text)
    before = _processors(sd_unet)
    classic = AttnProcessor()
    with control(sd_unet, classic, select="self") as handle:
        assert all(layer.module.processor is classic for layer in handle.layers)
        assert torch.allclose(_sd(sd_unet, x, text), plain, atol=1e-5)
    assert all(p is before[n] for n, p in _processors(sd_unet).items())
    first, second = Explicit(), AttentionProcessor()
    with control(sd_unet, [first, second]) as handle:
        assert isinstance(next(iter(handle.processors.values())), Chain)
        assert torch.allclose(_sd(sd_unet, x, text), plain, rtol=0, atol=1e-5 * float(plain.abs().max()))
    assert not first.attached and not second.attached


def test_processor_outside_control_is_an_error(sd_unet):
    layer = attention_layers(sd_unet)[0]
    stray = AttentionProcessor()
    layer.module.set_processor(stray)
    try:
        with pytest.raises(DiffcoreError, match="install it with diffcore.attention.control"):
            _sd(sd_unet, *_sd_inputs())
    finally:
        layer.module.set_processor(AttnProcessor2_0())


def test_cond_text_prior_through_network_of(sd_folder):
    prior = load_stable_diffusion(sd_folder)
    cond = Cond(text=prior.encode_text(["a cat", "a dog"]))
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    plain = prior.predict(latents, 0.3, cond)
    with control(prior, Explicit(), select=Select(kind="cross", block="mid")) as handle:
        assert [layer.name for layer in handle.layers] == ["mid_block.attentions.0.transformer_blocks.0.attn2"]
        inside = prior.predict(latents, 0.3, cond)
    assert torch.allclose(inside.eps, plain.eps, rtol=0, atol=1e-5 * float(plain.eps.abs().max()))


def test_every_building_block_is_released_on_exit(sd_unet, tmp_path):
    from diffcore.attention import CrossFrameAttention, ReplaceMaps, ReweightTokens, StoreMaps

    x, text = _sd_inputs(batch=2)
    disk = StoreMaps(tmp_path / "maps", chunk_bytes=2**30)  # one chunk, written on exit
    blocks = [
        AttentionProcessor(),
        StoreMaps(),
        disk,
        CrossFrameAttention(2),
        ReweightTokens({1: 2.0}),
        ReplaceMaps(),
        Chain(ReplaceMaps(), StoreMaps()),
    ]
    for block in blocks:
        with control(sd_unet, block) as handle:
            _sd(sd_unet, x, text)
            assert block.attached and handle.active
        members = block.processors if isinstance(block, Chain) else (block,)
        assert not handle.active and handle.processors == {}
        assert not any(p.attached for p in (block, *members)), block
        assert all(p._calls == {} for p in (block, *members))  # step counters freed
    assert disk.nbytes == 0 and len(list((tmp_path / "maps").iterdir())) == 1
