"""Saving a fine-tuned prior and loading it back by name.

:func:`save_finetuned` writes a folder with two files:

- ``weights.safetensors``: the trained tensors only (``delta=True``: the LoRA adapters, or the
  parameters that require gradients, or those a selection names), or the whole network
  (``delta=False``);
- ``finetuned.json``: the base prior's spec (``"zoo:digits"``, ``"diffusers:path=..."``), what
  was saved, the LoRA settings, the dtype and the diffcore version.

:func:`load_finetuned` (registered as the prior ``finetuned``) rebuilds the base through the
registry, adds the same LoRA adapters, and copies the tensors in, after checking that every
name exists with the same shape. Weights load through :mod:`diffcore.weights`: safetensors only,
checked before use; a pickle file is refused.

>>> import tempfile, torch, diffcore
>>> from diffcore.testing import save_tiny_unet_pipeline
>>> from diffcore.training import train_only
>>> tmp = tempfile.TemporaryDirectory()
>>> base = f"diffusers:path={save_tiny_unet_pipeline(tmp.name + '/base')}"
>>> prior = diffcore.create("prior", base)
>>> trained = train_only(prior, "pattern:conv_out.*")
>>> with torch.no_grad():
...     _ = trained[0][1].add_(0.1)
>>> folder = save_finetuned(prior, tmp.name + "/tuned", base=base)
>>> again = diffcore.create("prior", "finetuned", path=folder)
>>> torch.equal(again.network.conv_out.weight, prior.network.conv_out.weight)
True
>>> tmp.cleanup()
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from diffcore.errors import CheckpointError, DiffcoreError
from diffcore.layers import network_of, select_parameters
from diffcore.training.lora import add_lora, is_lora_parameter, lora_settings

WEIGHTS = "weights.safetensors"
RECORD = "finetuned.json"
FORMAT = "diffcore-finetuned"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, seen = {}, set()
    for name, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        out[name] = t.clone() if key in seen else t  # safetensors refuses tensors that share memory
        seen.add(key)
    return out


def save_finetuned(prior, folder, *, base: str, delta: bool = True, select: str | None = None) -> Path:
    """Write the fine-tuned ``prior`` to ``folder`` (created; an earlier save there is replaced); return it.

    Args:
        prior: the trained prior (or its network).
        base: the spec the base prior is built from (``"zoo:digits"``, ``"diffusers:path=DIR"``);
            :func:`load_finetuned` rebuilds it with ``diffcore.create("prior", base)``.
        delta: save only what training changed: the LoRA adapters and every parameter that
            requires gradients (or that ``select`` names, a kind of
            :func:`diffcore.layers.select_parameters`); ``False`` saves the whole network.
    """
    if not isinstance(base, str) or not base:
        raise DiffcoreError("save_finetuned needs base='<prior spec>' (e.g. 'zoo:digits'), the prior it was fine-tuned from")
    network = network_of(prior)
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / RECORD).is_file())):
        raise DiffcoreError(f"{folder} exists and is not an empty folder or an earlier save_finetuned output; choose another folder")
    lora = lora_settings(network)
    if delta:
        chosen = dict(select_parameters(network, select)) if select else {n: p for n, p in network.named_parameters() if p.requires_grad}
        chosen.update({n: p for n, p in network.named_parameters() if is_lora_parameter(n)})
        if not chosen:
            raise DiffcoreError("nothing to save: no parameter requires grad and there is no LoRA; pass select=KIND or delta=False")
        tensors = {n: p for n, p in network.named_parameters() if n in chosen}
    else:
        tensors = dict(network.state_dict())
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()})
    from diffcore import __version__

    record = {
        "format": FORMAT,
        "base": base,
        "delta": bool(delta),
        "tensors": sorted(tensors),
        "select": select,
        "lora": None if lora is None else {k: v for k, v in lora.items() if k != "enabled"},
        "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
        "prior": type(prior).__name__,
        "diffcore_version": __version__,
    }
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD).unlink(missing_ok=True)  # the record goes last: a folder without it is not a finished save
    _atomic_write(folder / WEIGHTS, lambda p: save_file(_cpu_tensors(tensors), str(p), metadata={"format": "pt"}))
    _atomic_write(folder / RECORD, lambda p: p.write_text(json.dumps(record, indent=2) + "\n"))
    return folder


def read_finetuned(path) -> dict:
    """The ``finetuned.json`` record of a :func:`save_finetuned` folder (checked)."""
    from diffcore.weights import is_pickle

    folder = Path(path)
    if not folder.is_dir():
        what = "a pickle checkpoint, which is refused" if is_pickle(folder) else "not a folder"
        raise CheckpointError(f"{folder} is {what}; expected the folder save_finetuned wrote ({RECORD} and {WEIGHTS})")
    try:
        record = json.loads((folder / RECORD).read_text())
    except FileNotFoundError:
        pickles = sorted(p.name for p in folder.iterdir() if is_pickle(p))
        hint = f" (it holds pickle files, which are refused: {', '.join(pickles)})" if pickles else ""
        raise CheckpointError(f"{folder} has no {RECORD}; expected a folder written by diffcore.training.save_finetuned{hint}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {folder / RECORD}: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("base"), str):
        raise CheckpointError(f"{folder / RECORD} is not a diffcore fine-tuning record (format {FORMAT!r} with a base spec)")
    return record


def load_finetuned(base: str | None, path, *, device=None, dtype=None):
    """The prior saved by :func:`save_finetuned` in ``path``: the base built from its spec, the saved tensors applied.

    ``base`` is the base prior's spec, or None for the one ``finetuned.json`` records (pass
    another spec when the base moved to another folder); ``device`` and ``dtype`` are passed to
    the base's factory. The network comes back frozen, in eval mode. The registered prior
    ``finetuned`` calls this: ``diffcore.create("prior", "finetuned", base=..., path=...)``.
    """
    from diffcore.plugin_host import create
    from diffcore.weights import load_state_dict

    folder = Path(path)
    record = read_finetuned(folder)
    tensors = load_state_dict(folder / WEIGHTS)
    listed = set(record.get("tensors") or [])
    if listed and listed != set(tensors):
        missing = sorted(listed - set(tensors))
        raise CheckpointError(
            f"{folder / WEIGHTS} does not hold what {RECORD} lists ({len(missing)} missing, e.g. "
            f"{missing[0] if missing else sorted(set(tensors) - listed)[0]!r})"
        )
    options = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
    prior = create("prior", base or record["base"], **options)
    network = network_of(prior)
    lora = record.get("lora")
    if lora:
        add_lora(
            network, rank=int(lora["rank"]), alpha=float(lora["alpha"]), target=list(lora["target_modules"]), dropout=float(lora["dropout"])
        )
    own = network.state_dict()
    extra = sorted(set(tensors) - set(own))
    if extra:
        raise CheckpointError(f"{folder / WEIGHTS} has {len(extra)} tensor(s) the base {record['base']!r} lacks, e.g. {extra[0]!r}")
    if not record.get("delta", True):
        missing = sorted(set(own) - set(tensors))
        if missing:
            raise CheckpointError(f"{folder / WEIGHTS} lacks {len(missing)} tensor(s) of the base {record['base']!r}, e.g. {missing[0]!r}")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise CheckpointError(f"{folder / WEIGHTS}: {name!r} has shape {tuple(t.shape)} but the base's is {tuple(own[name].shape)}")
    with torch.no_grad():
        for name, t in tensors.items():
            own[name].copy_(t)
    network.eval().requires_grad_(False)
    return prior
