"""Training checkpoints that survive a kill: one folder per saved step, written aside and renamed.

What :func:`diffcore.training.fit` saves (:func:`training_state`) and restores
(:func:`restore_training_state`), and how it is stored.

``CHECKPOINT_DIR/step-000100/`` holds ``state.safetensors`` (every tensor: trainable parameters,
optimiser moments, EMA, random generator states) and ``state.json`` (the step, the loss curve and
the numbers that are not tensors). A checkpoint is written to a hidden temporary folder next to
it, flushed to disk, and renamed into place, so a reader sees a whole checkpoint or none; older
checkpoints are removed only after the new one is in place. No pickle anywhere: loading a
checkpoint runs no code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from diffcore.errors import CheckpointError
from diffcore.training.processes import Processes

STATE = "state.safetensors"
META = "state.json"
FORMAT = "diffcore-training-checkpoint"
_STEP = re.compile(r"^step-(\d+)$")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoints(folder) -> list[tuple[int, Path]]:
    """The complete checkpoints in ``folder`` as ``(step, path)``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _STEP.match(entry.name)
        if match and (entry / STATE).is_file() and (entry / META).is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def save_checkpoint(folder, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any], *, keep: int = 1) -> Path:
    """Write the checkpoint of ``step`` atomically and keep only the newest ``keep`` ones; return its path."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:09d}"
    if (final / STATE).is_file() and (final / META).is_file():
        return final  # saved already: a run resumed from this step that ends where it started holds the same state
    tmp = folder / f".step-{step:09d}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        state = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(state, str(tmp / STATE), metadata={"format": FORMAT})
        (tmp / META).write_text(json.dumps({"format": FORMAT, **meta}))
        for name in (STATE, META):
            _fsync_file(tmp / name)
        if final.exists():  # an incomplete folder of this name (not written by this module)
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in checkpoints(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(".step-*.partial-*"):  # left by a killed run
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the metadata of the checkpoint folder ``path`` (checked: safetensors only)."""
    from diffcore.weights import load_state_dict

    path = Path(path)
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read training checkpoint {path / META}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a diffcore training checkpoint (no {FORMAT!r} format in {META})")
    return load_state_dict(path / STATE), meta


def latest_checkpoint(folder) -> Path | None:
    """The newest complete checkpoint in ``folder``, or None."""
    found = checkpoints(folder)
    return found[-1][1] if found else None


def rng_states(processes: Processes, generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """The states of ``generator`` and torch's global generators of every process (a collective: all take part)."""
    states = {"generator": generator.get_state(), "cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    tensors = {}
    for kind, state in states.items():
        for rank, gathered in enumerate(processes.gather(state)):
            tensors[f"rng/{kind}/{rank}"] = gathered
    return tensors


def training_state(
    pairs, opt: torch.optim.Optimizer, ema, scaler, rng: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors (parameters, optimiser moments, EMA, generator states) and the numbers of a training run."""
    tensors = {f"param/{n}": p for n, p in pairs}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in opt.state_dict()["state"].items():
        scalars[str(index)] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                scalars[str(index)][key] = value
    if ema is not None:
        tensors.update({f"ema/{n}": t for n, t in ema.state().items()})
    tensors.update(rng)
    meta = {
        "params": {n: [list(p.shape), str(p.dtype)] for n, p in pairs},
        "optimizer": scalars,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "diffcore_version": _version(),
    }
    return tensors, meta


def restore_training_state(
    path: Path, pairs, opt, ema, scaler, processes: Processes, generator: torch.Generator, device: torch.device
) -> dict:
    """Load the checkpoint ``path`` into the parameters, optimiser, EMA, scaler and generators; return its metadata."""
    tensors, meta = load_checkpoint(path)
    saved = meta.get("params", {})
    wanted = {n: [list(p.shape), str(p.dtype)] for n, p in pairs}
    if set(saved) != set(wanted):
        extra, missing = sorted(set(saved) - set(wanted)), sorted(set(wanted) - set(saved))
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise CheckpointError(f"{path} was saved for other parameters ({what}; {len(missing)} missing, {len(extra)} unexpected)")
    for n in wanted:
        if saved[n][0] != wanted[n][0]:
            raise CheckpointError(f"{path}: parameter {n!r} has shape {tuple(saved[n][0])} there but {tuple(wanted[n][0])} here")
    if int(meta.get("world", 1)) != processes.world:
        raise CheckpointError(
            f"{path} was saved by {meta.get('world')} process(es); resume it with as many (this run has {processes.world})"
        )
    with torch.no_grad():
        for n, p in pairs:
            p.copy_(tensors[f"param/{n}"])
    state = opt.state_dict()
    restored: dict[int, dict[str, Any]] = {int(index): dict(scalars) for index, scalars in meta.get("optimizer", {}).items()}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, index, field_name = key.split("/", 2)
            restored.setdefault(int(index), {})[field_name] = value
    state["state"] = restored
    opt.load_state_dict(state)
    if ema is not None:
        ema_state = {k[len("ema/") :]: v for k, v in tensors.items() if k.startswith("ema/")}
        if not ema_state:
            raise CheckpointError(f"{path} holds no EMA; resume without ema or from a run that had one")
        ema.load_state(ema_state)
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    rank = processes.rank
    generator.set_state(tensors[f"rng/generator/{rank}"])
    torch.set_rng_state(tensors[f"rng/cpu/{rank}"])
    if device.type == "cuda" and f"rng/cuda/{rank}" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng/cuda/{rank}"], device)
    return meta


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diffcore")
    except PackageNotFoundError:
        return None
