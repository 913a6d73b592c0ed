"""``zoo:shapes`` and every saved point-cloud prior: the folder layout, saving and loading.

A folder holds ``network.safetensors`` (the network's tensors, stored in float16 for the shipped
prior, loaded as float32), ``config.json`` (the network's constructor arguments, the default number of
points, the class names), and for a trained prior ``recipe.json`` (the run), ``metrics.json`` and
``README.md`` (the model card). The shipped one is ``diff_3d/weights/shapes/`` in the package.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from diffcore.errors import CheckpointError, DiffcoreError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
NAME = "shapes"
NETWORK = "network.safetensors"
CONFIG = "config.json"


def weights_folder() -> Path:
    """Where the shipped weights of ``zoo:shapes`` are."""
    return WEIGHTS_DIR / NAME


def is_trained(folder) -> bool:
    return all((Path(folder) / f).is_file() for f in (NETWORK, CONFIG))


def save_prior(prior, folder, *, dtype: torch.dtype = torch.float16) -> Path:
    """Write ``prior`` (a :class:`~diff_3d.points.prior.PointCloudPrior` with a :class:`~diff_3d.points.network.PointVoxelNet`)
    to ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().to(dtype).contiguous() for k, v in prior.network.state_dict().items()}
    save_file(tensors, str(folder / NETWORK), metadata={"format": "pt"})
    config = {"network": prior.network.config(), "points": prior.sample_shape[0], "class_names": list(prior.class_names or [])}
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def load_prior(folder, *, points: int | None = None, device=None, dtype=None, name: str | None = None):
    """The :class:`~diff_3d.points.prior.PointCloudPrior` saved in ``folder`` (float32 unless ``dtype``)."""
    from diff_3d.points.network import PointVoxelNet
    from diff_3d.points.prior import PointCloudPrior
    from diffcore.weights import load_state_dict

    folder = Path(folder)
    if not is_trained(folder):
        missing = [f for f in (NETWORK, CONFIG) if not (folder / f).is_file()]
        raise CheckpointError(f"{folder} is not a point-cloud prior folder: it lacks {', '.join(missing)}")
    try:
        config = json.loads((folder / CONFIG).read_text())
        network = PointVoxelNet(**config["network"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read {folder / CONFIG}: {type(exc).__name__}: {exc}") from None
    tensors = load_state_dict(folder / NETWORK)
    try:
        network.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{folder / NETWORK} does not fit its config.json: {str(exc).splitlines()[0]}") from None
    network.eval().requires_grad_(False)
    names = config.get("class_names") or None
    return PointCloudPrior(
        network, points=int(points or config.get("points", 2048)), class_names=names, device=device, dtype=dtype, name=name
    )


def load(path=None, points: int | None = None, device=None, dtype=None):
    """``zoo:shapes`` (the shipped weights, or a folder ``path`` that training wrote)."""
    folder = Path(path) if path is not None else weights_folder()
    if not is_trained(folder):
        where = "are not shipped in this installation" if path is None else f"are not in {folder}"
        raise DiffcoreError(
            f"the weights of zoo:{NAME} {where}: train them with `python -m diff_3d.points.train --out DIR` and load them with "
            f"diffcore.create('prior', 'zoo:{NAME}', path=DIR)"
        )
    return load_prior(folder, points=points, device=device, dtype=dtype, name=f"zoo:{NAME}")


__all__ = ["NAME", "WEIGHTS_DIR", "is_trained", "load", "load_prior", "save_prior", "weights_folder"]
