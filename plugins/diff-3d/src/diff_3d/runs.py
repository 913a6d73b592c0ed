"""Trained representations on disk: diff-3d's own run folders and nerfstudio's outputs, loaded for export.

A ``diffcore 3d distill`` run folder holds ``run.json`` (the representation's spec, the prior, the
distiller, the settings and the loss curve) and ``representation.safetensors`` (its tensors).
A nerfstudio run of ``diff-sds`` / ``diff-sjc`` / ``diff-vsd`` is read from its ``config.yml``
(nerfstudio's own format: load only runs you trust) and its newest ``step-*.ckpt`` in
``nerfstudio_models/`` (read with ``torch.load(weights_only=True)``, tensors and plain data only).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import diffcore
from diffcore.errors import CheckpointError, DiffcoreError

RUN_FILE = "run.json"
WEIGHTS_FILE = "representation.safetensors"


def save_run(folder: str | Path, representation, spec: str, settings: dict) -> Path:
    """Write ``representation`` (registered as ``spec``) and ``settings`` to ``folder``; return ``run.json``'s path."""
    from safetensors.torch import save_file

    from diffcore.tour import write_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in representation.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    meta = {"representation": spec, "weights": WEIGHTS_FILE, "diffcore": diffcore.__version__, **settings}
    return write_atomic(folder / RUN_FILE, json.dumps(meta, indent=1))


def load_run(path: str | Path):
    """The representation of a run folder (or its ``run.json``), rebuilt by spec through the registry, in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    run_file = path / RUN_FILE if path.is_dir() else path
    if not run_file.is_file():
        raise CheckpointError(f"no {RUN_FILE} at {str(path)!r}: point --config at a diffcore 3d run folder or a nerfstudio config.yml")
    try:
        meta = json.loads(run_file.read_text())
        spec = meta["representation"]
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{run_file} is not a diff-3d run description ({type(exc).__name__}: {exc})") from None
    weights = run_file.parent / meta.get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise CheckpointError(f"the run {str(run_file.parent)!r} has no {weights.name}: the checkpoint is missing")
    representation = diffcore.create("representation", spec)
    try:
        representation.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} does not fit representation {spec!r}: {str(exc).splitlines()[0]}") from None
    return representation.eval()


def _checkpoint(config, config_path: Path) -> Path:
    """The newest checkpoint of a nerfstudio run: under its recorded checkpoint folder, or next to config.yml."""
    candidates = []
    if config.load_dir is not None:
        candidates.append(Path(config.load_dir))
    candidates += [config.get_checkpoint_dir(), config_path.parent / "nerfstudio_models"]
    for folder in candidates:
        found = sorted(Path(folder).glob("step-*.ckpt")) if Path(folder).is_dir() else []
        if found:
            return max(found, key=lambda p: int(p.stem.split("-")[1]))
    raise CheckpointError(
        f"no checkpoint (step-*.ckpt) for {str(config_path)!r}: looked in {', '.join(str(c) for c in dict.fromkeys(map(str, candidates)))}"
    )


def load_nerfstudio(config_path: str | Path, device: str = "cpu"):
    """The representation of a nerfstudio run of a diff-3d method, from its config.yml and newest checkpoint, in eval mode."""
    import yaml

    config_path = Path(config_path)
    if not config_path.is_file():
        raise CheckpointError(f"no nerfstudio config at {str(config_path)!r}")
    try:
        config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{config_path} is not a nerfstudio config: {str(exc).splitlines()[0]}") from None
    from nerfstudio.engine.trainer import TrainerConfig

    from diff_3d.ns.model import DistillModelConfig

    if not isinstance(config, TrainerConfig):
        raise CheckpointError(f"{config_path} is not a nerfstudio training config")
    if not isinstance(config.pipeline.model, DistillModelConfig):
        raise DiffcoreError(
            f"{config_path} is a run of {config.method_name!r}, not of a diff-3d method (diff-sds, diff-sjc, diff-vsd); use ns-export "
            "for it"
        )
    checkpoint = _checkpoint(config, config_path)
    pipeline = config.pipeline.setup(device=device, test_mode="inference")
    state = torch.load(checkpoint, map_location=device, weights_only=True)
    pipeline.load_pipeline(state["pipeline"], state["step"])
    return pipeline.model.representation.eval()


def load_any(path: str | Path, device: str = "cpu"):
    """A trained representation from a nerfstudio ``config.yml`` or a diff-3d run folder / ``run.json``."""
    path = Path(path)
    if path.suffix in (".yml", ".yaml"):
        return load_nerfstudio(path, device=device)
    return load_run(path).to(device)
