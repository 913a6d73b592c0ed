"""Training checkpoints that survive a kill: one folder per saved step, written aside and renamed.

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
