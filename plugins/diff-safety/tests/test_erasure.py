"""Concept erasure on tiny random networks: what trains, that the target is met, saving and loading, the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import diffcore
from diff_safety.erasure import ErasureSettings, erase, selection_for
from diff_safety.erasure.esd import esd_target
from diffcore.cli import cli
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond
from diffcore.training import frozen_copy


def _conditional_unet(folder: Path) -> str:
    """A tiny class-conditional UNet2DModel (4 class embeddings) saved as a pipeline; returns its spec.

    The registered ``diffusers`` prior does not name classes or a null label, so erasure needs an anchor here.
    """
    from diffusers import DDIMScheduler, UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DModel(
            sample_size=8,
            in_channels=1,
            out_channels=1,
            layers_per_block=1,
            block_out_channels=(16, 32),
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=8,
            num_class_embeds=4,
        )
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    DDIMScheduler(clip_sample=True).save_pretrained(folder / "scheduler")
    return f"diffusers:path={folder}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _conditional_unet(tmp_path_factory.mktemp("unet") / "pipe")


FAST = dict(steps=30, batch=8, pool=16, pool_steps=4)


def _gap(prior, original, concept: Cond, anchor: Cond, eta: float = 1.0) -> float:
    """Mean squared distance of the prior's concept prediction to ESD's target on fixed noisy inputs."""
    g = torch.Generator().manual_seed(9)
    x_t = torch.randn(16, *prior.sample_shape, generator=g)
    t = torch.linspace(0.1, 0.9, 16, dtype=torch.float64)
    with torch.no_grad():
        return float((prior.predict(x_t, t, concept).eps - esd_target(original, x_t, t, concept, anchor, eta=eta)).pow(2).mean())


def test_esd_x_on_a_class_conditional_unet_moves_only_the_concepts_embedding(tiny):
    prior = diffcore.create("prior", tiny)
    original = frozen_copy(prior)
    assert selection_for(prior, "esd-x") == "pattern:class_embedding.*"
    concept, anchor = Cond(labels=torch.tensor([1])), Cond(labels=torch.tensor([3]))
    before = _gap(prior, original, concept, anchor)
    result = erase(prior, 1, anchor=3, settings=ErasureSettings(method="esd-x", **FAST))
    after = _gap(result.prior, original, concept, anchor)
    assert after < 0.5 * before  # the concept now predicts (close to) the negatively guided noise
    rows_now, rows_then = prior.network.class_embedding.weight, original.network.class_embedding.weight
    assert not torch.equal(rows_now[1], rows_then[1])
    assert torch.equal(rows_now[[0, 2, 3]], rows_then[[0, 2, 3]])  # the other classes and the anchor untouched
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for label in (0, 2, 3):
        c = Cond(labels=torch.tensor([label]))
        assert torch.equal(prior.predict(x, 0.5, c).eps, original.predict(x, 0.5, c).eps)


def test_erased_prior_saves_and_loads_by_name(tiny, tmp_path):
    from diff_safety.erasure import save_erased

    prior = diffcore.create("prior", tiny)
    result = erase(prior, 2, anchor=0, settings=ErasureSettings(method="ablation", **FAST))
    folder = save_erased(result, tmp_path / "erased", base=tiny)
    record = json.loads((folder / "erasure.json").read_text())
    assert (
        record["format"] == "diffcore-safety-erasure"
        and record["concept"] == 2
        and record["anchor"] == 0
        and record["selection"] == "pattern:class_embedding.*"
    )
    again = diffcore.create("prior", "finetuned", path=str(folder))
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    c = Cond(labels=torch.tensor([2]))
    assert torch.equal(again.predict(x, 0.3, c).eps, result.prior.predict(x, 0.3, c).eps)


def test_ablation_pulls_the_concept_onto_the_anchor(tiny):
    prior = diffcore.create("prior", tiny)
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    t = torch.linspace(0.1, 0.9, 16, dtype=torch.float64)
    c, a = Cond(labels=torch.tensor([0])), Cond(labels=torch.tensor([2]))

    def gap():
        with torch.no_grad():
            return float((prior.predict(x, t, c).eps - prior.predict(x, t, a).eps).pow(2).mean())

    before = gap()
    erase(prior, 0, anchor=2, settings=ErasureSettings(method="ablation", **FAST))
    assert gap() < 0.3 * before


def test_esd_u_trains_everything_but_cross_attention_on_stable_diffusion(tmp_path):
    from diffcore.testing import save_tiny_stable_diffusion

    spec = f"stable-diffusion:path={save_tiny_stable_diffusion(tmp_path / 'sd')}"
    prior = diffcore.create("prior", spec)
    assert selection_for(prior, "esd-x") == "cross-attention" and selection_for(prior, "esd-u") == "all-but-cross-attention"
    original = frozen_copy(prior)
    erase(prior, "a red chair", settings=ErasureSettings(method="esd-u", steps=2, batch=2, pool=2, pool_steps=2, lr=1e-3))
    now, then = dict(prior.network.named_parameters()), dict(original.network.named_parameters())
    cross = [n for n in now if ".attn2." in n]
    assert cross and all(torch.equal(now[n], then[n]) for n in cross)
    assert any(not torch.equal(now[n], then[n]) for n in now if ".attn2." not in n)


def test_esd_x_with_lora_on_stable_diffusion_loads_back(tmp_path):
    from diff_safety.erasure import save_erased
    from diffcore.testing import save_tiny_stable_diffusion

    spec = f"stable-diffusion:path={save_tiny_stable_diffusion(tmp_path / 'sd')}"
    prior = diffcore.create("prior", spec)
    result = erase(
        prior, "a red chair", settings=ErasureSettings(method="esd-x", steps=3, batch=2, pool=2, pool_steps=2, lora_rank=2, lr=1e-2)
    )
    folder = save_erased(result, tmp_path / "erased", base=spec)
    saved = json.loads((folder / "finetuned.json").read_text())
    assert (
        saved["lora"]["rank"] == 2
        and all("attn2" in name for name in saved["tensors"])
        and all("lora_" in name for name in saved["tensors"])
    )
    again = diffcore.create("prior", "finetuned", path=str(folder))
    x = torch.randn(1, *prior.sample_shape, generator=torch.Generator().manual_seed(4))
    c = Cond(text=["a red chair"])
    assert torch.allclose(again.predict(x, 0.5, c).eps, result.prior.predict(x, 0.5, c).eps, atol=1e-6)


def test_erasure_input_errors(tiny):
    prior = diffcore.create("prior", tiny)
    with pytest.raises(DiffcoreError, match="has no null condition to erase towards; give an anchor"):
        erase(prior, 1, settings=ErasureSettings(**FAST))
    with pytest.raises(DiffcoreError, match="the anchor must differ"):
        erase(prior, 1, anchor=1, settings=ErasureSettings(**FAST))
    with pytest.raises(DiffcoreError, match="has no network to fine-tune"):
        erase(diffcore.create("prior", "gaussian:mean=[0.0, 0.0]"), 1)
    with pytest.raises(DiffcoreError, match="unknown erasure method"):
        ErasureSettings(method="esd")


def _erase(*args):
    return CliRunner().invoke(cli, ["safety", "erase", *args])


def test_erase_command_writes_a_loadable_prior(tiny, tmp_path):
    out = tmp_path / "out"
    res = _erase(
        "--prior",
        tiny,
        "--concept",
        "1",
        "--anchor",
        "0",
        "--method",
        "esd-x",
        "--steps",
        "5",
        "--pool",
        "8",
        "--batch",
        "4",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["erasure.json", "finetuned.json", "weights.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert isinstance(diffcore.create("prior", "finetuned", path=str(out)).network, torch.nn.Module)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--concept", "1.5"], "must be a class index, not '1.5'"),
        (["--concept", "5"], "the concept 5 is not a class of this prior; it has classes 0 to 3"),
        (["--concept", "cat"], "must be a class index, not 'cat'"),
        (["--prior", "gaussian:mean=[0.0, 0.0]"], "has no network to fine-tune"),
        (["--prior", "unconditional"], "cannot be conditioned on a concept"),
        (["--train", "cross-attention"], "selects nothing"),
        (["--measure"], "--measure uses the zoo's digits classifier"),
    ],
)
def test_erase_command_bad_input_is_one_line_and_writes_nothing(tiny, tmp_path, args, message):
    from diffcore.testing import save_tiny_unet_pipeline

    args = list(args)
    if "unconditional" in args:
        args[args.index("unconditional")] = f"diffusers:path={save_tiny_unet_pipeline(tmp_path / 'plain')}"
    base = ["--prior", tiny, "--concept", "1"] + ([] if "--anchor" in args else ["--anchor", "0"])
    for key in ("--prior", "--concept"):
        if key in args:
            i = base.index(key)
            del base[i : i + 2]
    out = tmp_path / "out"
    res = _erase(*base, *args, "--steps", "2", "--out", str(out))
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert not out.exists() and not (tmp_path / ".out.partial").exists()
