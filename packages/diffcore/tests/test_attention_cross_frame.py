"""CrossFrameAttention: plain attention with one frame, causal in frames, the gathered keys, and a peer check
against diffusers' Text2Video-Zero processor."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffusers import UNet2DConditionModel  # noqa: E402

from diffcore.attention import CrossFrameAttention, Select, control  # noqa: E402
from diffcore.errors import DiffcoreError  # noqa: E402
from diffcore.layers import attention_layers  # noqa: E402
from diffcore.testing import save_tiny_stable_diffusion  # noqa: E402

VIDEOS, FRAMES = 2, 4
MODES = ["first", "previous", "first+previous", [0], [-1, 0], lambda f, n: [f]]


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    folder = save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd") / "sd")
    return UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()


def _video(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 8, 8, generator=g), torch.randn(batch, 77, 16, generator=g)


@torch.no_grad()
def _run(unet, x, text):
    return unet(x, 400, encoder_hidden_states=text).sample


@pytest.mark.parametrize("attend", MODES, ids=["first", "previous", "first+previous", "list", "list-last", "self"])
def test_one_frame_is_plain_attention_bit_for_bit(unet, attend):
    x, text = _video(3)
    plain = _run(unet, x, text)
    with control(unet, CrossFrameAttention(1, attend)) as handle:
        assert {layer.kind for layer in handle.layers} == {"self"}
        assert torch.equal(_run(unet, x, text), plain)


def test_frames_only_see_earlier_frames(unet):
    """With "first", "previous" and "first+previous" a frame's output depends on no later frame."""
    x, text = _video(VIDEOS * FRAMES)
    changed = x.clone()
    changed.view(VIDEOS, FRAMES, 4, 8, 8)[:, -1] += 1.0  # perturb the last frame of each video
    for attend in ("first", "previous", "first+previous"):
        with control(unet, CrossFrameAttention(FRAMES, attend)):
            a, b = _run(unet, x, text), _run(unet, changed, text)
        a, b = a.view(VIDEOS, FRAMES, -1), b.view(VIDEOS, FRAMES, -1)
        assert torch.allclose(a[:, :-1], b[:, :-1], rtol=0, atol=1e-6), attend
        assert not torch.allclose(a[:, -1], b[:, -1], atol=1e-3)
    with control(unet, CrossFrameAttention(FRAMES, [0, FRAMES - 1])):  # every frame sees the last one
        a, b = _run(unet, x, text).view(VIDEOS, FRAMES, -1), _run(unet, changed, text).view(VIDEOS, FRAMES, -1)
    assert not torch.allclose(a[:, 1], b[:, 1], atol=1e-3)


def test_identical_frames_give_plain_attention(unet):
    x, text = _video(VIDEOS)
    frames = x.repeat_interleave(FRAMES, dim=0)
    texts = text.repeat_interleave(FRAMES, dim=0)
    plain = _run(unet, frames, texts)
    for attend in ("first", "previous", [1, 2]):
        with control(unet, CrossFrameAttention(FRAMES, attend)):
            assert torch.allclose(_run(unet, frames, texts), plain, rtol=0, atol=1e-6)


def test_first_and_previous_keys_at_one_layer(unet):
    """The layer's output for frame f is attention over the keys and values of frames 0 and f - 1."""
    layer = next(layer for layer in attention_layers(unet) if layer.kind == "self")
    attn = layer.module
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(VIDEOS * FRAMES, 64, attn.query_dim, generator=g)
    with torch.no_grad(), control(unet, CrossFrameAttention(FRAMES, "first+previous"), select=Select(name=layer.name)):
        out = attn(hidden)
        q, k, v = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)
    heads, d = attn.heads, q.shape[-1] // attn.heads
    split = lambda t: t.view(VIDEOS, FRAMES, -1, heads, d).transpose(2, 3)  # noqa: E731 - (N, F, heads, L, d)
    q, k, v = split(q), split(k), split(v)
    for f in range(FRAMES):
        sources = [0] if f <= 1 else [0, f - 1]
        keys, values = torch.cat([k[:, s] for s in sources], dim=2), torch.cat([v[:, s] for s in sources], dim=2)
        p = torch.softmax(q[:, f] @ keys.transpose(-1, -2) / d**0.5, dim=-1)
        expected = attn.to_out[0]((p @ values).transpose(1, 2).reshape(VIDEOS, -1, heads * d))
        assert torch.allclose(out.view(VIDEOS, FRAMES, 64, -1)[:, f], expected, rtol=1e-5, atol=1e-6), f


def _text2video_zero_processor():
    for module in (
        "diffusers.pipelines.text_to_video_synthesis.pipeline_text_to_video_zero",
        "diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero",
    ):
        try:
            return __import__(module, fromlist=["CrossFrameAttnProcessor2_0"]).CrossFrameAttnProcessor2_0
        except (ImportError, AttributeError):
            continue
    pytest.skip("diffusers has no Text2Video-Zero CrossFrameAttnProcessor2_0")


def test_peer_text2video_zero(unet):
    """Same tiny UNet and inputs: ours ("first", self-attention layers) against diffusers' processor on every
    layer (it leaves cross-attention alone). Both gather the first frame's keys and run the same kernel; the
    outputs agree within 1e-6 of their scale (measured: bit-identical on CPU float32)."""
    peer = _text2video_zero_processor()
    x, text = _video(VIDEOS * FRAMES, seed=3)
    before = unet.attn_processors
    unet.set_attn_processor(peer(batch_size=VIDEOS))
    try:
        theirs = _run(unet, x, text)
    finally:
        unet.set_attn_processor(before)
    with control(unet, CrossFrameAttention(FRAMES, "first")):
        ours = _run(unet, x, text)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-6 * float(theirs.abs().max()))
    assert not torch.allclose(ours, _run(unet, x, text), atol=1e-3)  # and it is not plain attention


def test_errors(unet):
    with pytest.raises(DiffcoreError, match="unknown cross-frame mode 'last'"):
        CrossFrameAttention(2, "last")
    with pytest.raises(DiffcoreError, match="frames must be a positive int"):
        CrossFrameAttention(0)
    with pytest.raises(DiffcoreError, match="cross-frame source 3 is not a frame of a 3-frame video"):
        CrossFrameAttention(3, [0, 3])
    with pytest.raises(DiffcoreError, match=r"the same positive number of source frames; got \[1, 2\]"):
        CrossFrameAttention(2, lambda f, n: list(range(f + 1)))
    with pytest.raises(DiffcoreError, match="a batch of 3 is not a whole number of 2-frame videos"):
        with control(unet, CrossFrameAttention(2)):
            _run(unet, *_video(3))
