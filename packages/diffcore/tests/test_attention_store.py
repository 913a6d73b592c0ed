"""StoreMaps: the maps are the layer's softmax(QK^T / sqrt(d)), in memory or on disk, bounded, freed by clear()."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffusers import UNet2DConditionModel  # noqa: E402

from diffcore.attention import Select, StoreMaps, control  # noqa: E402
from diffcore.errors import DiffcoreError  # noqa: E402
from diffcore.layers import attention_layers  # noqa: E402
from diffcore.testing import save_tiny_stable_diffusion  # noqa: E402

LATENT, TOKENS, BATCH = 8, 77, 2


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    folder = save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd") / "sd")
    return UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, 4, LATENT, LATENT, generator=g), torch.randn(BATCH, TOKENS, 16, generator=g)


@torch.no_grad()
def _run(unet, inputs, times=(900, 500)):
    x, text = inputs
    return [unet(x, t, encoder_hidden_states=text).sample for t in times]


def _expected_shape(layer, heads_averaged=False):
    queries = (LATENT // layer.resolution) ** 2
    keys = TOKENS if layer.kind == "cross" else queries
    heads = () if heads_averaged else (layer.module.heads,)
    return (BATCH, *heads, queries, keys)


def test_maps_are_row_stochastic_with_the_expected_shapes(unet, inputs):
    store = StoreMaps()
    with control(unet, store) as handle:
        _run(unet, inputs)
    layers = handle.layers
    keys = store.keys()  # in call order: every layer's step 0, then every layer's step 1
    assert [s for _, s in keys] == [0] * len(layers) + [1] * len(layers)
    assert sorted(keys) == sorted((layer.name, step) for step in (0, 1) for layer in layers)
    for layer in layers:
        for step in (0, 1):
            m = store.map(layer, step)
            assert tuple(m.shape) == _expected_shape(layer) and m.dtype == torch.float32 and m.device.type == "cpu"
            assert (m >= 0).all() and torch.allclose(m.sum(-1), torch.ones(()), atol=1e-5)
    assert not store.attached  # released on exit; the maps stay
    assert store.nbytes == sum(m.numel() * 4 for m in store.maps().values())
    store.clear()
    assert store.keys() == [] and store.nbytes == 0


def test_maps_equal_the_softmax_of_the_layer_queries_and_keys(unet, inputs):
    layer = next(layer for layer in attention_layers(unet) if layer.kind == "cross" and layer.block == "mid")
    seen = {}
    hook = layer.module.register_forward_pre_hook(
        lambda m, args, kwargs: seen.update(h=args[0], e=kwargs["encoder_hidden_states"]), with_kwargs=True
    )
    store = StoreMaps(steps={0})
    try:
        with control(unet, store, select=Select(name=layer.name)):
            _run(unet, inputs, times=(700,))
    finally:
        hook.remove()
    attn, heads = layer.module, layer.module.heads
    q, k = attn.to_q(seen["h"]), attn.to_k(seen["e"])
    d = q.shape[-1] // heads
    q = q.view(BATCH, -1, heads, d).transpose(1, 2)
    k = k.view(BATCH, -1, heads, d).transpose(1, 2)
    expected = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
    assert torch.allclose(store.map(layer.name, 0), expected, rtol=1e-5, atol=1e-7)


def test_steps_and_head_average(unet, inputs):
    full, averaged = StoreMaps(), StoreMaps(steps=lambda s: s % 2 == 1, average_heads=True, dtype=torch.float16)
    with control(unet, [full, averaged], select="cross") as handle:
        _run(unet, inputs, times=(900, 700, 500))
    assert {s for _, s in averaged.keys()} == {1} and {s for _, s in full.keys()} == {0, 1, 2}
    for layer in handle.layers:
        m = averaged.map(layer.name, 1)
        assert tuple(m.shape) == _expected_shape(layer, heads_averaged=True) and m.dtype == torch.float16
        assert torch.allclose(m.float(), full.map(layer.name, 1).mean(1), atol=1e-3)


def test_disk_chunks_round_trip_bounded_and_atomic(unet, inputs, tmp_path):
    folder = tmp_path / "maps"
    memory = StoreMaps()
    biggest = []

    class Watched(StoreMaps):
        def edit_probabilities(self, call, probabilities):
            out = super().edit_probabilities(call, probabilities)
            biggest.append(self.nbytes)
            return out

    chunk = 64 * 1024
    disk = Watched(folder, chunk_bytes=chunk)
    with control(unet, [memory, disk]):
        _run(unet, inputs)
    one_map = max(m.numel() * 4 for m in memory.maps().values())
    assert max(biggest) <= chunk + one_map  # never more than a chunk plus one map held
    assert disk.nbytes == 0  # the last partial chunk was written on exit
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) > 2 and all(name.startswith("maps-") and name.endswith(".safetensors") for name in files)  # no temporary files
    assert disk.keys() == memory.keys()
    for key in memory.keys():
        assert torch.equal(disk.map(*key), memory.map(*key))
    loaded = StoreMaps.load(folder)
    assert loaded.keys() == memory.keys() and loaded.nbytes == 0
    for key in memory.keys():
        assert torch.equal(loaded.map(*key), memory.map(*key))
    with pytest.raises(DiffcoreError, match="already holds attention maps"):
        StoreMaps(folder)
    loaded.clear()
    assert list(folder.iterdir()) == []
    with pytest.raises(DiffcoreError, match="holds no attention maps"):
        StoreMaps.load(folder)


def test_memory_budget_duplicates_and_missing_maps(unet, inputs):
    layers = attention_layers(unet)
    reference = StoreMaps()
    with control(unet, reference):
        _run(unet, inputs, times=(900,))
    sizes = [m.numel() * 4 for m in reference.maps().values()]
    budget = sizes[0] + sizes[1] // 2
    store = StoreMaps(max_bytes=budget)
    before = {layer.name: layer.module.processor for layer in layers}
    with pytest.raises(
        DiffcoreError, match=rf"past max_bytes={budget} .*store to a folder, average heads, or select fewer layers or steps$"
    ):
        with control(unet, store):
            _run(unet, inputs)
    assert all(layer.module.processor is before[layer.name] for layer in layers)
    assert store.nbytes == sizes[0] and not store.attached

    store = StoreMaps()
    with control(unet, store, select="cross"):
        _run(unet, inputs, times=(900,))
    with pytest.raises(DiffcoreError, match="already holds the map of .* at step 0; clear"):
        with control(unet, store, select="cross"):
            _run(unet, inputs, times=(900,))
    name = store.keys()[0][0]
    with pytest.raises(DiffcoreError, match=rf"no stored attention map of {name} at step 5; this record holds steps 0..0 \(1\)"):
        store.map(name, 5)
