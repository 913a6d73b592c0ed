"""Weights load from safetensors only; pickle needs an explicit trust flag; bad files fail clearly."""

from __future__ import annotations

import pickle
import shutil
import time

import pytest
import torch
from safetensors.torch import save_file

import diffcore
from diffcore.errors import CheckpointError, DiffcoreError
from diffcore.weights import check_model_folder, check_safetensors, load_state_dict, resolve_model


class _Payload:
    """Unpickling this runs code: the reason pickle is refused."""

    def __reduce__(self):
        return (print, ("pickle ran code",))


@pytest.fixture
def files(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}
    save_file(state, str(tmp_path / "model.safetensors"))
    torch.save(state, tmp_path / "model.bin")
    return tmp_path, state


def test_safetensors_load(files):
    folder, state = files
    loaded = load_state_dict(folder / "model.safetensors")
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".ckpt", ".pth"])
def test_pickle_refused_unless_trusted(files, suffix):
    folder, state = files
    path = folder / f"model{suffix}"
    if not path.exists():
        shutil.copy(folder / "model.bin", path)
    with pytest.raises(CheckpointError, match="refusing to load pickle checkpoint .*trust_pickle=True"):
        load_state_dict(path)
    loaded = load_state_dict(path, trust_pickle=True)
    assert torch.equal(loaded["w"], state["w"])


def test_trusted_pickle_still_loads_weights_only(tmp_path, capsys):
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        pickle.dump({"w": _Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="evil.bin"):
        load_state_dict(path, trust_pickle=True)
    assert "pickle ran code" not in capsys.readouterr().out


def test_corrupt_safetensors(files):
    folder, _ = files
    good = (folder / "model.safetensors").read_bytes()
    truncated = folder / "truncated.safetensors"
    truncated.write_bytes(good[:-7])
    garbage = folder / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file at all" * 3)
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError, match=path.name) as info:
            load_state_dict(path)
        assert "\n" not in str(info.value)
        with pytest.raises(CheckpointError, match=path.name):
            check_safetensors(path)


def test_other_formats_and_missing_files(tmp_path):
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unsupported weights file"):
        load_state_dict(tmp_path / "weights.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state_dict(tmp_path / "missing.safetensors")


# -- model folders ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("diffusers")
    from diffcore.testing import save_tiny_unet_pipeline

    return save_tiny_unet_pipeline(tmp_path_factory.mktemp("tiny") / "pipe", seed=2)


def _pickle_only_copy(tiny, dest):
    """The same pipeline with its UNet weights as a pickle ``.bin`` only."""
    shutil.copytree(tiny, dest)
    state = load_state_dict(dest / "unet" / "diffusion_pytorch_model.safetensors")
    (dest / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(state, dest / "unet" / "diffusion_pytorch_model.bin")
    return dest


def test_pickle_only_folder_refused_unless_trusted(tiny, tmp_path):
    folder = _pickle_only_copy(tiny, tmp_path / "pickled")
    with pytest.raises(CheckpointError, match=r"unet holds only pickle weights \(diffusion_pytorch_model.bin\).*trust_pickle=True"):
        diffcore.create("prior", "diffusers", path=folder)
    with pytest.raises(CheckpointError, match="only pickle"):
        check_model_folder(folder)
    trusted = diffcore.create("prior", "diffusers", path=folder, trust_pickle=True)
    safe = diffcore.create("prior", "diffusers", path=tiny)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(trusted.predict(x, 0.3).eps, safe.predict(x, 0.3).eps)


def test_folder_with_both_formats_uses_safetensors(tiny, tmp_path):
    folder = tmp_path / "both"
    shutil.copytree(tiny, folder)
    torch.save({"junk": torch.zeros(1)}, folder / "unet" / "diffusion_pytorch_model.bin")
    assert [p.name for p in check_model_folder(folder)] == ["diffusion_pytorch_model.safetensors"]
    diffcore.create("prior", "diffusers", path=folder)  # loads: the pickle file is never read


def test_corrupt_weights_in_a_model_folder(tiny, tmp_path):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors file .*diffusion_pytorch_model.safetensors"):
        diffcore.create("prior", "diffusers", path=folder)


def test_config_without_weights(tiny, tmp_path):
    folder = tmp_path / "noweights"
    shutil.copytree(tiny, folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model config but no safetensors weights"):
        diffcore.create("prior", "diffusers", path=folder)


def test_stable_diffusion_folder_with_pickle_text_encoder(tmp_path):
    pytest.importorskip("transformers")
    from diffcore.testing import save_tiny_stable_diffusion

    folder = save_tiny_stable_diffusion(tmp_path / "sd")
    (weights,) = (folder / "text_encoder").glob("*.safetensors")
    torch.save(load_state_dict(weights), folder / "text_encoder" / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(CheckpointError, match="text_encoder holds only pickle weights"):
        diffcore.create("prior", "stable-diffusion", path=folder)


# -- names that are not local folders --------------------------------------------------------
def test_unknown_hub_id_fails_in_one_line():
    start = time.monotonic()
    with pytest.raises(DiffcoreError, match="not found locally and hub access failed") as info:
        diffcore.create("prior", "diffusers", path="diffcore-tests/no-such-model-anywhere")
    assert "\n" not in str(info.value)
    assert time.monotonic() - start < 30


def test_local_paths_that_do_not_exist(tmp_path):
    with pytest.raises(DiffcoreError, match="no such folder"):
        resolve_model(tmp_path / "missing" / "model")
    with pytest.raises(DiffcoreError, match="no such folder"):
        resolve_model("./relative/missing")
    (tmp_path / "file.safetensors").write_bytes(b"")
    with pytest.raises(DiffcoreError, match="is a file"):
        resolve_model(tmp_path / "file.safetensors")
