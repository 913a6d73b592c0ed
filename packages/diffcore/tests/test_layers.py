"""diffcore.layers: the classification of attention layers and the parameter selection built on it.

Resolutions are checked against the feature maps the layers actually see in a forward pass (a
forward pre-hook reads the shape of the hidden states), not against numbers written here.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffusers import UNet2DConditionModel, UNet2DModel, UNet3DConditionModel, UNetMotionModel  # noqa: E402
from diffusers.models.attention_processor import Attention  # noqa: E402

from diffcore.errors import DiffcoreError  # noqa: E402
from diffcore.layers import KINDS, attention_layers, is_temporal, network_of, select_parameters  # noqa: E402
from diffcore.testing import save_tiny_stable_diffusion, save_tiny_unet_pipeline  # noqa: E402

SIZE, FRAMES, BATCH = 16, 3, 2


@pytest.fixture(scope="module")
def sd_unet(tmp_path_factory):
    folder = save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd") / "sd")
    return UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()


@pytest.fixture(scope="module")
def pixel_unet(tmp_path_factory):
    folder = save_tiny_unet_pipeline(tmp_path_factory.mktemp("tiny-unet") / "unet", sample_size=SIZE)
    return UNet2DModel.from_pretrained(folder, subfolder="unet").eval()


def _unet3d():
    torch.manual_seed(0)
    return UNet3DConditionModel(
        sample_size=SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=8,
        attention_head_dim=4,
        norm_num_groups=4,
    ).eval()


def _motion_unet():
    torch.manual_seed(0)
    return UNetMotionModel(
        sample_size=SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
        up_block_types=("UpBlockMotion", "CrossAttnUpBlockMotion"),
        cross_attention_dim=8,
        norm_num_groups=4,
        num_attention_heads=2,
        motion_num_attention_heads=2,
        motion_max_seq_length=FRAMES,
    ).eval()


def _observed_factors(network, run) -> dict[str, int]:
    """Module name -> downsampling factor of the hidden states each attention layer received."""
    seen: dict[str, tuple] = {}

    def record(name):
        def hook(module, args, kwargs):
            seen.setdefault(name, tuple((args[0] if args else kwargs["hidden_states"]).shape))

        return hook

    handles = [
        module.register_forward_pre_hook(record(name), with_kwargs=True)
        for name, module in network.named_modules()
        if isinstance(module, Attention)
    ]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    factors = {}
    for name, shape in seen.items():
        if len(shape) == 4:  # (B, C, H, W): UNet2DModel's attention blocks
            pixels = shape[2] * shape[3]
        elif is_temporal(name):  # (B * H * W, frames, C): frames in the sequence, positions in the batch
            pixels = shape[0] // BATCH
        else:  # (B [* frames], H * W, C)
            pixels = shape[1]
        factors[name] = SIZE // math.isqrt(pixels)
    return factors


def _run_sd(unet):
    return lambda: unet(torch.randn(BATCH, 4, SIZE, SIZE), 10, encoder_hidden_states=torch.randn(BATCH, 5, unet.config.cross_attention_dim))


def _run_video(unet):
    texts = BATCH * FRAMES if isinstance(unet, UNetMotionModel) else BATCH  # AnimateDiff's UNet takes one text per frame
    return lambda: unet(torch.randn(BATCH, 4, FRAMES, SIZE, SIZE), 10, encoder_hidden_states=torch.randn(texts, 5, 8))


def _check_resolutions(network, run):
    layers = attention_layers(network)
    observed = _observed_factors(network, run)
    assert set(observed) == {layer.name for layer in layers}
    for layer in layers:
        assert layer.resolution == observed[layer.name], layer.name
    return layers


def test_stable_diffusion_unet_kinds_blocks_and_resolutions(sd_unet):
    layers = _check_resolutions(sd_unet, _run_sd(sd_unet))
    config = sd_unet.config
    cross_down = sum(t.startswith("CrossAttn") for t in config.down_block_types)
    cross_up = sum(t.startswith("CrossAttn") for t in config.up_block_types)
    transformers = cross_down * config.layers_per_block + cross_up * (config.layers_per_block + 1) + 1  # + the mid block
    assert len(layers) == 2 * transformers
    for layer in layers:
        assert layer.module is sd_unet.get_submodule(layer.name)
        leaf = layer.name.rsplit(".", 1)[1]
        assert (leaf, layer.kind) in {("attn1", "self"), ("attn2", "cross")}, layer.name
        assert layer.block == layer.name.split(".")[0].split("_")[0], layer.name
    assert {layer.resolution for layer in layers if layer.block == "mid"} == {2}
    assert {layer.resolution for layer in layers if layer.block != "mid"} == {1}


def test_pixel_unet_has_only_self_attention(pixel_unet):
    layers = _check_resolutions(pixel_unet, lambda: pixel_unet(torch.randn(BATCH, 3, SIZE, SIZE), 10))
    assert [layer.kind for layer in layers] == ["self"] * 4
    assert [(layer.block, layer.resolution) for layer in layers] == [("down", 2), ("up", 2), ("up", 2), ("mid", 2)]


def test_unet3d_temporal_layers_and_resolutions():
    unet = _unet3d()
    layers = _check_resolutions(unet, _run_video(unet))
    by_kind = {kind: [layer for layer in layers if layer.kind == kind] for kind in ("self", "cross", "temporal")}
    assert all(len(v) > 0 for v in by_kind.values())
    for layer in by_kind["temporal"]:
        assert ".temp_attentions." in layer.name or layer.name.startswith("transformer_in."), layer.name
    for layer in by_kind["self"] + by_kind["cross"]:
        assert ".attentions." in layer.name and layer.name.endswith("attn1" if layer.kind == "self" else "attn2")
    assert {layer.block for layer in by_kind["temporal"] if layer.name.startswith("transformer_in.")} == {"in"}
    assert {layer.resolution for layer in layers} == {1, 4}  # two downsamplers: the third block runs at 4


def test_motion_unet_motion_modules_are_temporal():
    unet = _motion_unet()
    layers = _check_resolutions(unet, _run_video(unet))
    for layer in layers:
        assert (layer.kind == "temporal") == (".motion_modules." in layer.name), layer.name
        if layer.kind != "temporal":
            assert layer.kind == ("cross" if layer.name.endswith("attn2") else "self")
    assert sum(layer.kind == "cross" for layer in layers) == 4  # down 0 (1), up 1 (2), mid (1)


def test_temporal_rule():
    assert is_temporal("down_blocks.0.temp_convs.0.conv1.1.weight")
    assert is_temporal("transformer_in.proj_in.weight")
    assert is_temporal("up_blocks.2.resnets.0.temporal_res_block.conv1.weight")
    assert is_temporal("mid_block.my_temporal_mixer.attn1")
    assert not is_temporal("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight")
    assert not is_temporal("time_embedding.linear_1.weight")


def test_layer_inserted_by_name_is_temporal(sd_unet):
    unet = UNet2DConditionModel.from_config(sd_unet.config)
    unet.up_blocks[1].add_module("temporal_mixer", Attention(query_dim=16, heads=2, dim_head=8))
    layer = next(layer for layer in attention_layers(unet) if "temporal_mixer" in layer.name)
    assert (layer.kind, layer.block, layer.resolution) == ("temporal", "up", 1)
    assert [name for name, _ in select_parameters(unet, "temporal")] == [
        f"up_blocks.1.temporal_mixer.{n}" for n, _ in layer.module.named_parameters()
    ]


@pytest.mark.parametrize("build", ["sd", "3d", "motion"])
def test_selections_partition_the_parameters(build, sd_unet):
    network = {"sd": lambda: sd_unet, "3d": _unet3d, "motion": _motion_unet}[build]()
    everything = {name for name, _ in network.named_parameters()}
    pick = {}
    for kind in KINDS:
        try:
            pick[kind] = {name for name, _ in select_parameters(network, kind)}
        except DiffcoreError:
            pick[kind] = set()
    assert pick["all"] == everything
    assert pick["cross-attention"] and pick["self-attention"]
    assert pick["cross-attention"] | pick["all-but-cross-attention"] == everything
    assert not pick["cross-attention"] & pick["all-but-cross-attention"]
    assert not pick["cross-attention"] & pick["self-attention"] and not pick["self-attention"] & pick["temporal"]
    assert not pick["cross-attention"] & pick["temporal"]
    layers = attention_layers(network)
    for kind, label in (("cross-attention", "cross"), ("self-attention", "self")):
        expected = {f"{layer.name}.{n}" for layer in layers if layer.kind == label for n, _ in layer.module.named_parameters()}
        assert pick[kind] == expected
    assert pick["temporal"] == {name for name in everything if is_temporal(name)}
    if build == "sd":
        assert not pick["temporal"]
    else:
        assert pick["temporal"] > {
            f"{layer.name}.{n}" for layer in layers if layer.kind == "temporal" for n, _ in layer.module.named_parameters()
        }
    if build == "3d":
        assert any(".temp_convs." in name for name in pick["temporal"])


def test_patterns(sd_unet):
    names = [name for name, _ in sd_unet.named_parameters()]
    glob = [name for name, _ in select_parameters(sd_unet, "pattern:*attn2.to_[kv].*")]
    assert glob == [n for n in names if ".attn2.to_k." in n or ".attn2.to_v." in n] and len(glob) == 2 * sum(
        layer.kind == "cross" for layer in attention_layers(sd_unet)
    )
    regex = [name for name, _ in select_parameters(sd_unet, r"regex:attn[12]\.to_q")]
    assert regex == [n for n in names if ".attn1.to_q." in n or ".attn2.to_q." in n]
    params = dict(sd_unet.named_parameters())
    assert all(p is params[name] for name, p in select_parameters(sd_unet, "pattern:*"))


def test_errors(sd_unet, pixel_unet):
    with pytest.raises(
        DiffcoreError,
        match=(
            r"'temporal' selects nothing on UNet2DConditionModel; kinds that select something here: all, cross-attention, "
            r"self-attention, all-but-cross-attention$"
        ),
    ):
        select_parameters(sd_unet, "temporal")
    with pytest.raises(
        DiffcoreError, match=r"'cross-attention' selects nothing on UNet2DModel; .*: all, self-attention, all-but-cross-attention$"
    ):
        select_parameters(pixel_unet, "cross-attention")
    with pytest.raises(DiffcoreError, match=r"unknown parameter selection 'cross'; expected one of all, cross-attention, .*pattern:<glob>"):
        select_parameters(sd_unet, "cross")
    with pytest.raises(DiffcoreError, match="'pattern:nothing.here' selects nothing"):
        select_parameters(sd_unet, "pattern:nothing.here")
    with pytest.raises(DiffcoreError, match="not a valid regular expression"):
        select_parameters(sd_unet, "regex:attn[")


def test_network_of(tmp_path):
    import diffcore
    from diffcore.adapters.diffusers_prior import load_unet_prior
    from diffcore.priors import Conditioned

    prior = load_unet_prior(save_tiny_unet_pipeline(tmp_path / "unet"))
    assert network_of(prior) is prior.unet
    assert network_of(Conditioned(prior, diffcore.Cond())) is prior.unet
    assert network_of(prior.unet) is prior.unet
    assert attention_layers(prior)[0].module is attention_layers(prior.unet)[0].module
    gmm = diffcore.create("prior", "gmm", means=[[0.0, 1.0]])
    with pytest.raises(DiffcoreError, match="^prior GaussianMixturePrior has no network: attention control needs a diffusers network"):
        network_of(gmm)
    with pytest.raises(DiffcoreError, match="has no network"):
        select_parameters(gmm, "all")
