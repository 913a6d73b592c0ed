"""inflate: at the start the image model on every frame; temporal layers selected, classified and trained alone."""

from __future__ import annotations

import copy

import pytest
import torch

from diff_video.inflate import frames, inflate, is_inflated, video_forward
from diff_video.temporal import TemporalAttention, TemporalConvolution
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.layers import attention_layers, select_parameters
from diffcore.training import frozen_copy, train_only


def _image_unet(seed=0, labels=False):
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=8,
            in_channels=1,
            out_channels=1,
            block_out_channels=(16, 32),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=8,
            attention_head_dim=8,
            num_class_embeds=4 if labels else None,
        )


def _per_frame(unet, x, t, **kwargs):
    n, f = x.shape[:2]
    flat_t = t.reshape(-1) if isinstance(t, torch.Tensor) and t.ndim == 2 else t
    if isinstance(flat_t, torch.Tensor) and flat_t.ndim == 1 and flat_t.numel() == n:
        flat_t = flat_t.repeat_interleave(f)
    with torch.no_grad():
        return unet(x.flatten(0, 1), flat_t, **kwargs).sample.unflatten(0, (n, f))


def _perturb(network, scale=0.2, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in network.named_parameters():
            if "temporal" in name:
                p.add_(scale * torch.randn(p.shape, generator=g))


def test_starts_as_the_image_model_on_every_frame():
    image = _image_unet(labels=True)
    video = inflate(image)
    x = torch.randn(2, 5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 3])
    with torch.no_grad():
        ours = video_forward(video, x, torch.tensor([10, 700]), class_labels=labels)
    ref = _per_frame(image, x, torch.tensor([10, 700]), class_labels=labels.repeat_interleave(5))
    assert float((ours - ref).abs().max()) <= 1e-5
    # one time per frame: each frame sees its own
    t = torch.randint(1000, (2, 5), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = video_forward(video, x, t, class_labels=labels)
    assert float((ours - _per_frame(image, x, t, class_labels=labels.repeat_interleave(5))).abs().max()) <= 1e-5


def test_text_conditional_unet_starts_as_the_image_model():
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        image = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=16,
            attention_head_dim=4,
            norm_num_groups=8,
        )
    video = inflate(image, head_dim=8)
    x = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    text = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = video_forward(video, x, 500, encoder_hidden_states=text)
    ref = _per_frame(image, x, 500, encoder_hidden_states=text.repeat_interleave(3, 0))
    assert float((ours - ref).abs().max()) <= 1e-5
    kinds = {(layer.kind, layer.block) for layer in attention_layers(video)}
    assert ("temporal", "down") in kinds and ("cross", "up") in kinds


def test_temporal_layers_couple_frames_and_leave_the_image_model_alone():
    image = _image_unet()
    video = inflate(image)
    _perturb(video)
    x = torch.randn(1, 4, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = video_forward(video, x, 300)
        moved = x.clone()
        moved[:, 0] += 1.0
        other = video_forward(video, moved, 300)
        alone = video(x.flatten(0, 1), 300).sample  # called on images, outside frames(): the image model
    assert float((other[:, 1:] - out[:, 1:]).abs().max()) > 1e-3  # frame 0 reaches the other frames
    assert float((alone - _per_frame(image, x, 300).flatten(0, 1)).abs().max()) <= 1e-5
    assert float((out - _per_frame(image, x, 300)).abs().max()) > 1e-3


def test_layers_and_selection():
    image = _image_unet()
    video = inflate(image)
    assert is_inflated(video) and not is_inflated(image)
    assert not any("temporal" in name for name, _ in image.named_parameters())  # copy=True left it as it was
    inserted = {name for name, module in video.named_modules() if isinstance(module, TemporalConvolution | TemporalAttention)}
    resnets = [n for n, m in image.named_modules() if type(m).__name__ == "ResnetBlock2D"]
    spatial_attention = [
        n for n, m in image.named_modules() if n.endswith(("attentions.0", "attentions.1")) or n.endswith("mid_block.attentions.0")
    ]
    assert len([n for n in inserted if "temporal_convs" in n]) == len(resnets)
    assert len([n for n in inserted if "temporal_attentions" in n]) == len(spatial_attention)
    selected = {name for name, _ in select_parameters(video, "temporal")}
    temporal_params = {f"{m}.{p}" for m in inserted for p, _ in video.get_submodule(m).named_parameters()}
    assert selected == temporal_params
    temporal = [layer for layer in attention_layers(video) if layer.kind == "temporal"]
    places = {(layer.block, layer.resolution) for layer in temporal}
    assert places == {("down", 2), ("mid", 2), ("up", 2)}
    trained = train_only(video, "temporal")
    assert {n for n, _ in trained} == temporal_params
    assert all(p.requires_grad == (n in temporal_params) for n, p in video.named_parameters())


def test_only_temporal_layers_get_gradients():
    video = inflate(_image_unet())
    train_only(video, "temporal")
    x = torch.randn(2, 3, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    video_forward(video, x, 100).pow(2).mean().backward()
    grads = {n: p.grad for n, p in video.named_parameters()}
    assert all(grads[n] is None for n in grads if "temporal" not in n)
    # the zero-initialised output projections get a gradient at the start; the layers before them only after they move
    assert any(g is not None and float(g.abs().max()) > 0 for n, g in grads.items() if n.endswith("conv2.weight"))
    assert any(g is not None and float(g.abs().max()) > 0 for n, g in grads.items() if n.endswith("to_out.0.weight"))


def test_copies_are_independent():
    video = inflate(_image_unet())
    twin = frozen_copy(video)
    copied = copy.deepcopy(video)
    _perturb(video)
    x = torch.randn(1, 3, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert torch.equal(video_forward(twin, x, 50), video_forward(copied, x, 50))
        assert not torch.equal(video_forward(twin, x, 50), video_forward(video, x, 50))
        with frames(video, 3):  # the copy's frame count is its own
            assert float((twin(x.flatten(0, 1), 50).sample - _per_frame(_image_unet(), x, 50).flatten(0, 1)).abs().max()) <= 1e-5


def test_bad_input():
    image = _image_unet()
    video = inflate(image, max_frames=4)
    with pytest.raises(ShapeError, match="takes 1 to 4 frames, got 5"):
        video_forward(video, torch.zeros(1, 5, 1, 8, 8), 10)
    with pytest.raises(ShapeError, match="expected videos"):
        video_forward(video, torch.zeros(1, 1, 8, 8), 10)
    with pytest.raises(ShapeError, match="timestep has shape \\(3,\\)"):
        video_forward(video, torch.zeros(1, 2, 1, 8, 8), torch.zeros(3))
    with pytest.raises(DiffcoreError, match="already inflated"):
        inflate(video)
    with pytest.raises(DiffcoreError, match="takes a diffusers 2-D UNet"):
        inflate(torch.nn.Linear(2, 2))
    with pytest.raises(DiffcoreError, match="is not an inflated network"):
        with frames(image, 2):
            pass
    with pytest.raises(DiffcoreError, match="temporal convolutions, temporal attention or both"):
        inflate(image, convolution=False, attention=False)
