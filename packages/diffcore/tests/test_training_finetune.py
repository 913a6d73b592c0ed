"""Fine-tuning on tiny diffusers models: selection, frozen copies, LoRA, and saving / loading back by name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import diffcore
from diffcore.errors import CheckpointError, DiffcoreError
from diffcore.layers import attention_layers, select_parameters
from diffcore.protocols import Cond, Trainable
from diffcore.testing import save_tiny_stable_diffusion, save_tiny_unet_pipeline
from diffcore.training import (
    add_lora,
    denoising_loss,
    fit,
    frozen_copy,
    load_finetuned,
    lora_disabled,
    lora_parameters,
    lora_settings,
    save_finetuned,
    set_lora_enabled,
    train_only,
)

STEPS = 3


@pytest.fixture(scope="module")
def sd_base(tmp_path_factory):
    folder = save_tiny_stable_diffusion(tmp_path_factory.mktemp("sd") / "pipe")
    return f"stable-diffusion:path={folder}"


@pytest.fixture(scope="module")
def unet_base(tmp_path_factory):
    folder = save_tiny_unet_pipeline(tmp_path_factory.mktemp("unet") / "pipe")
    return f"diffusers:path={folder}"


def _train(prior, params, cond=None, steps=STEPS, lr=1e-2):
    """A few denoising steps on fixed data (x0 = a smooth ramp), AdamW."""
    x0 = torch.linspace(-1, 1, prior.sample_shape[-1]).expand(2, *prior.sample_shape).contiguous()
    return fit(
        lambda step, g: denoising_loss(prior, x0, cond=cond, generator=g),
        params,
        steps=steps,
        lr=lr,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )


def _probe(prior, cond=None):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, *prior.sample_shape, generator=g)
    with torch.no_grad():
        return prior.predict(x, torch.tensor([0.3, 0.8]), cond).eps


def _state(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_the_adapters_are_trainable(sd_base, unet_base):
    for spec in (sd_base, unet_base):
        assert isinstance(diffcore.create("prior", spec), Trainable)


def test_selection_trains_only_the_selected_parameters_and_the_frozen_copy_stays(sd_base):
    prior = diffcore.create("prior", sd_base)
    teacher = frozen_copy(prior)
    before, probe = _state(prior.network), _probe(teacher, Cond(text="a cat"))
    assert not any(p.requires_grad for p in teacher.network.parameters()) and not teacher.network.training
    ptrs = {p.data_ptr() for m in (prior.network, prior.vae, prior.text_encoder) for p in m.parameters()}
    assert not ptrs & {p.data_ptr() for m in (teacher.network, teacher.vae, teacher.text_encoder) for p in m.parameters()}

    chosen = train_only(prior, "cross-attention")
    assert [n for n, _ in chosen] == [n for n, _ in select_parameters(prior, "cross-attention")]
    _train(prior, chosen, cond=Cond(text="a cat"))
    after, names = _state(prior.network), {n for n, _ in chosen}
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and changed <= names  # only selected ones moved (some, e.g. unused biases, may not)
    assert {n for n in names if "to_k" in n} <= changed
    assert all(torch.equal(a, b) for a, b in zip(_state(teacher.network).values(), before.values()))
    assert torch.equal(_probe(teacher, Cond(text="a cat")), probe)
    assert not torch.equal(_probe(prior, Cond(text="a cat")), probe)


def test_lora_starts_as_the_base_trains_alone_switches_off_and_reloads_by_name(sd_base, tmp_path):
    prior = diffcore.create("prior", sd_base)
    cond = Cond(text="a photo of a dog")
    base_probe, base_state = _probe(prior, cond), _state(prior.network)
    cross = sorted(
        f"{layer.name}.{proj}"
        for layer in attention_layers(prior)
        if layer.kind == "cross"
        for proj in ("to_q", "to_k", "to_v", "to_out.0")
    )
    lora = add_lora(prior, rank=2, target="cross-attention")
    assert lora == lora_parameters(prior) and all(p.requires_grad for _, p in lora)
    assert [p for p in prior.network.parameters() if p.requires_grad] == [p for _, p in lora]
    assert lora_settings(prior)["target_modules"] == cross and len(cross) == 16
    assert torch.equal(_probe(prior, cond), base_probe)  # B = 0: the adapted network is the base one, bit for bit

    _train(prior, lora, cond=cond)
    state = _state(prior.network)
    base_names = [n for n in state if n in base_state or n.replace(".base_layer", "") in base_state]
    assert all(
        torch.equal(state[n], base_state.get(n, base_state.get(n.replace(".base_layer", "")))) for n in base_names if "lora_" not in n
    )
    assert all(not torch.equal(p, torch.zeros_like(p)) for n, p in lora if "lora_B" in n)
    tuned = _probe(prior, cond)
    assert not torch.equal(tuned, base_probe)
    with lora_disabled(prior):
        assert torch.equal(_probe(prior, cond), base_probe)  # the base model from the same network
    assert torch.equal(_probe(prior, cond), tuned) and all(p.requires_grad for _, p in lora)
    set_lora_enabled(prior, False)
    assert torch.equal(_probe(prior, cond), base_probe) and all(p.requires_grad for _, p in lora)
    set_lora_enabled(prior, True)

    delta = save_finetuned(prior, tmp_path / "delta", base=sd_base)
    record = json.loads((delta / "finetuned.json").read_text())
    assert record["delta"] and record["lora"]["rank"] == 2 and set(record["tensors"]) == {n for n, _ in lora}
    again = diffcore.create("prior", "finetuned", path=delta)
    assert torch.equal(_probe(again, cond), tuned)
    assert not any(p.requires_grad for p in again.network.parameters()) and not again.network.training
    full = save_finetuned(prior, tmp_path / "full", base=sd_base, delta=False)
    assert json.loads((full / "finetuned.json").read_text())["delta"] is False
    assert torch.equal(_probe(diffcore.create("prior", "finetuned", path=full), cond), tuned)
    with pytest.raises(DiffcoreError, match="already has LoRA"):
        add_lora(prior)


def test_a_parameter_delta_saves_the_trained_tensors_and_loads_back_bit_for_bit(unet_base, tmp_path):
    prior = diffcore.create("prior", unet_base)
    chosen = train_only(prior, "self-attention")
    _train(prior, chosen)
    folder = save_finetuned(prior, tmp_path / "tuned", base=unet_base)
    from safetensors import safe_open

    with safe_open(str(folder / "weights.safetensors"), framework="pt") as f:
        assert sorted(f.keys()) == sorted(n for n, _ in chosen)
    again = diffcore.create("prior", "finetuned", path=str(folder))
    assert torch.equal(_probe(again), _probe(prior))
    # the base moved: another spec for it, here through load_finetuned itself
    moved = tmp_path / "moved"
    shutil.copytree(unet_base.split("path=", 1)[1], moved)
    assert torch.equal(_probe(load_finetuned(f"diffusers:path={moved}", folder)), _probe(prior))
    other = save_tiny_unet_pipeline(tmp_path / "other", block_out_channels=(8, 16))
    with pytest.raises(CheckpointError, match="has shape"):
        diffcore.create("prior", "finetuned", base=f"diffusers:path={other}", path=folder)
    assert not torch.equal(_probe(again), _probe(diffcore.create("prior", unet_base)))
    explicit = save_finetuned(prior, tmp_path / "conv", base=unet_base, select="pattern:conv_out.*")
    assert json.loads((explicit / "finetuned.json").read_text())["tensors"] == ["conv_out.bias", "conv_out.weight"]


def test_bad_finetuned_folders_fail_with_one_line(unet_base, tmp_path):
    prior = diffcore.create("prior", unet_base)
    train_only(prior, "pattern:conv_out.*")
    good = save_finetuned(prior, tmp_path / "good", base=unet_base)
    record = json.loads((good / "finetuned.json").read_text())

    def variant(name, tensors=None, edit=None):
        from safetensors.torch import save_file

        folder = tmp_path / name
        folder.mkdir()
        if tensors is not None:
            save_file(tensors, str(folder / "weights.safetensors"))
        (folder / "finetuned.json").write_text(json.dumps({**record, **(edit or {})}))
        return folder

    w = prior.network.conv_out.weight.detach()
    cases = {
        "extra": (
            variant("extra", {"conv_out.weight": w, "nope.weight": w.clone()}, {"tensors": ["conv_out.weight", "nope.weight"]}),
            "lacks",
        ),
        "shape": (variant("shape", {"conv_out.weight": w[:1]}, {"tensors": ["conv_out.weight"]}), "has shape"),
        "listed": (variant("listed", {"conv_out.weight": w}, {"tensors": ["conv_out.weight", "conv_out.bias"]}), "does not hold"),
        "full": (
            variant("full", {"conv_out.weight": w}, {"tensors": ["conv_out.weight"], "delta": False}),
            "lacks 1 tensor|lacks [0-9]+ tensor",
        ),
        "format": (variant("format", {"conv_out.weight": w}, {"format": "something"}), "not a diffcore fine-tuning record"),
    }
    truncated = variant("truncated", {"conv_out.weight": w})
    data = (truncated / "weights.safetensors").read_bytes()
    (truncated / "weights.safetensors").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (truncated, "corrupt or truncated")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save({"conv_out.weight": w}, pickled / "weights.bin")
    cases["pickle"] = (pickled, "pickle files, which are refused")
    cases["file"] = (pickled / "weights.bin", "pickle checkpoint, which is refused")
    for name, (path, message) in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            diffcore.create("prior", "finetuned", path=path)
        assert "\n" not in str(info.value), name
    with pytest.raises(DiffcoreError, match="not an empty folder"):
        save_finetuned(prior, pickled, base=unet_base)
    frozen = diffcore.create("prior", unet_base)
    with pytest.raises(DiffcoreError, match="nothing to save"):
        save_finetuned(frozen, tmp_path / "nothing", base=unet_base)
