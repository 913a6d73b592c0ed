"""Prompt-to-prompt blocks: ReweightTokens and ReplaceMaps, in-batch and from a record on disk."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffusers import UNet2DConditionModel  # noqa: E402

from diffcore.attention import AttentionProcessor, ReplaceMaps, ReweightTokens, Select, StoreMaps, control  # noqa: E402
from diffcore.errors import DiffcoreError  # noqa: E402
from diffcore.layers import attention_layers  # noqa: E402
from diffcore.testing import save_tiny_stable_diffusion  # noqa: E402

TIMES = (900, 500)


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    folder = save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd") / "sd")
    return UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()


class Explicit(AttentionProcessor):
    """Plain attention through the explicit softmax path, the reference the edits are compared with."""

    default_select = "cross"

    def needs_probabilities(self, call):
        return True


def _inputs(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 8, 8, generator=g), torch.randn(batch, 77, 16, generator=g)


@torch.no_grad()
def _run(unet, x, text, times=TIMES):
    return [unet(x, t, encoder_hidden_states=text).sample for t in times]


def _with(unet, processor, x, text, times=TIMES, select=None):
    with control(unet, processor, select=select):
        return _run(unet, x, text, times)


# -- ReweightTokens ---------------------------------------------------------------------------
def test_reweight_by_one_is_the_plain_explicit_path(unet):
    x, text = _inputs(2)
    explicit = _with(unet, Explicit(), x, text)
    ones = _with(unet, ReweightTokens({1: 1.0, 5: 1.0}), x, text)
    assert all(torch.equal(a, b) for a, b in zip(ones, explicit))
    plain = _run(unet, x, text)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-6 * float(b.abs().max())) for a, b in zip(ones, plain))


def test_reweight_is_affine_in_the_factor_and_zero_removes_the_token(unet):
    layer = next(layer for layer in attention_layers(unet) if layer.kind == "cross")
    attn, token = layer.module, 3
    g = torch.Generator().manual_seed(1)
    hidden, encoder = torch.randn(2, 64, attn.query_dim, generator=g), torch.randn(2, 77, 16, generator=g)
    out = {}
    for factor in (0.0, 1.0, 2.0):
        with torch.no_grad(), control(unet, ReweightTokens({token: factor}), select=Select(name=layer.name)):
            out[factor] = attn(hidden, encoder_hidden_states=encoder)
    store = StoreMaps()
    with torch.no_grad(), control(unet, store, select=Select(name=layer.name)):
        attn(hidden, encoder_hidden_states=encoder)
    p = store.map(layer.name, 0)[..., token]  # (B, heads, L_q)
    heads, d = attn.heads, attn.inner_dim // attn.heads
    v = attn.to_v(encoder).view(2, 77, heads, d)[:, token]  # (B, heads, d)
    contribution = (p.unsqueeze(-1) * v.unsqueeze(2)).transpose(1, 2).reshape(2, 64, heads * d) @ attn.to_out[0].weight.T
    with torch.no_grad():
        assert torch.allclose(out[1.0] - out[0.0], contribution, atol=1e-5)
        assert torch.allclose(out[2.0] - out[1.0], out[1.0] - out[0.0], atol=1e-5)


def test_reweight_only_chosen_items(unet):
    x, text = _inputs(2)
    explicit = _with(unet, Explicit(), x, text)
    edited = _with(unet, ReweightTokens({2: 4.0}, items=[1]), x, text)
    for a, b in zip(edited, explicit):
        assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1], atol=1e-4)
    with pytest.raises(DiffcoreError, match="attends to 77 tokens; token indices \\[80\\] are out of range"):
        _with(unet, ReweightTokens({80: 2.0}), x, text)


# -- ReplaceMaps in the batch -------------------------------------------------------------------
def test_replace_with_identical_branches_changes_nothing(unet):
    x, text = _inputs(1)
    x, text = x.repeat(2, 1, 1, 1), text.repeat(2, 1, 1)
    explicit = _with(unet, Explicit(), x, text)
    replaced = _with(unet, ReplaceMaps(), x, text)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-6 * float(b.abs().max())) for a, b in zip(replaced, explicit))


def test_replace_copies_the_source_maps_for_the_chosen_steps(unet):
    x, text = _inputs(4)  # classifier-free guidance's layout: [source, target, source', target']
    store = StoreMaps()
    with control(unet, [ReplaceMaps(steps=range(1)), store]) as handle:  # a chain takes ReplaceMaps' layers
        _run(unet, x, text)
    assert {layer.kind for layer in handle.layers} == {"cross"}
    for (name, step), m in store.maps().items():
        same = torch.equal(m[1], m[0]) and torch.equal(m[3], m[2])
        assert same == (step == 0), (name, step)
    explicit, plain = _with(unet, Explicit(), x, text), _run(unet, x, text)
    replaced = _with(unet, ReplaceMaps(steps=range(1)), x, text)
    # step 0: the sources are untouched, the targets changed; step 1: not replaced, the fused kernel runs
    assert torch.equal(replaced[0][[0, 2]], explicit[0][[0, 2]]) and not torch.allclose(replaced[0][[1, 3]], explicit[0][[1, 3]], atol=1e-4)
    assert torch.equal(replaced[1], plain[1])


def test_replace_groups_of_targets_and_frames_and_chosen_tokens(unet):
    x, text = _inputs(6)  # one group: source frames 0-1, then two targets of two frames
    store = StoreMaps()
    _with(unet, [ReplaceMaps(targets=2, frames=2), store], x, text, times=(700,))
    for m in store.maps().values():
        assert torch.equal(m[2:4], m[0:2]) and torch.equal(m[4:6], m[0:2])

    x, text = _inputs(2, seed=2)
    first = next(layer for layer in attention_layers(unet) if layer.kind == "cross")  # first to run: same inputs in both passes
    plain, edited = StoreMaps(), StoreMaps()
    _with(unet, plain, x, text, times=(700,), select=Select(name=first.name))
    _with(unet, [ReplaceMaps(tokens=[1, 2]), edited], x, text, times=(700,), select=Select(name=first.name))
    before, after = plain.map(first, 0), edited.map(first, 0)
    assert torch.equal(after[1][..., [1, 2]], before[0][..., [1, 2]])
    others = [i for i in range(77) if i not in (1, 2)]
    assert torch.equal(after[1][..., others], before[1][..., others]) and torch.equal(after[0], before[0])
    with pytest.raises(DiffcoreError, match="a batch of 3 is not whole groups of one source and 1 target"):
        _with(unet, ReplaceMaps(), *_inputs(3), times=(700,))


# -- ReplaceMaps from a record ------------------------------------------------------------------
def test_maps_recorded_in_one_pass_fuse_into_another_from_disk(unet, tmp_path):
    """FateZero's use: record the source's maps (here in the reverse order, as an inversion runs), then
    denoise the target alone with them; the result is the in-batch replacement's target."""
    source, source_text = _inputs(1, seed=3)
    target, target_text = _inputs(1, seed=4)
    in_batch = _with(unet, ReplaceMaps(), torch.cat([source, target]), torch.cat([source_text, target_text]))

    recorder = StoreMaps(tmp_path / "record", chunk_bytes=32 * 1024)
    with control(unet, recorder, select="cross"):
        _run(unet, source, source_text, times=tuple(reversed(TIMES)))
    record = StoreMaps.load(tmp_path / "record")
    assert len(list((tmp_path / "record").iterdir())) > 1
    fused = _with(unet, ReplaceMaps(source=record, source_step=lambda step: len(TIMES) - 1 - step), target, target_text, select="cross")
    assert record.nbytes == 0  # read back from disk one map at a time, nothing kept
    for a, b in zip(fused, in_batch):
        assert torch.allclose(a[0], b[1], rtol=0, atol=1e-5 * float(b.abs().max()))
    plain_target = _run(unet, target, target_text)
    assert not torch.allclose(fused[0], plain_target[0], atol=1e-4)


def test_record_averaged_over_heads_broadcasts_and_shapes_are_checked(unet):
    source, text = _inputs(1, seed=5)
    record = StoreMaps(average_heads=True)
    _with(unet, record, source, text, times=(700,), select="cross")
    fused = StoreMaps()
    x, text2 = _inputs(2, seed=6)
    _with(unet, [ReplaceMaps(source=record, items=[1]), fused], x, text2, times=(700,), select="cross")
    for (name, step), m in fused.maps().items():
        assert torch.equal(m[1], record.map(name, step)[0].expand_as(m[1]))
    with pytest.raises(DiffcoreError, match=r"the recorded map has shape \(2, 4, 64, 77\); expected \(3 or 1, 4 or 1, 64, 77\)$"):
        bad = StoreMaps()
        _with(unet, bad, *_inputs(2), times=(700,), select="cross")
        _with(unet, ReplaceMaps(source=bad), *_inputs(3), times=(700,))
    with pytest.raises(DiffcoreError, match="no stored attention map of .* at step 1"):
        _with(unet, ReplaceMaps(source=record), *_inputs(1), times=(700, 500))
    with pytest.raises(DiffcoreError, match="items and source_step apply to a recorded source"):
        ReplaceMaps(items=[0])
