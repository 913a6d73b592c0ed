"""``zoo:moving-digits``: the shipped space-time prior, its folder layout and its loader.

The folder (``diff_video/weights/moving-digits/`` in the package, or what
:func:`diff_video.train.train` writes):

- ``unet/`` and ``scheduler/``: the image model (the fine-tuned spatial UNet), a ``DDIMPipeline``
  folder that diffcore's ``diffusers`` prior loads on its own (the frames-independent baseline);
- ``temporal/inflation.json`` and ``temporal/temporal.safetensors``: how the image UNet is
  inflated and the temporal layers' weights;
- ``recipe.json`` (the run), ``metrics.json`` and ``README.md`` (the model card).

Weights are stored in float16 and load as float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from diffcore.errors import CheckpointError, DiffcoreError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
NAME = "moving-digits"
TEMPORAL = Path("temporal") / "temporal.safetensors"
INFLATION = Path("temporal") / "inflation.json"
_FILES = (
    Path("unet") / "config.json",
    Path("unet") / "diffusion_pytorch_model.safetensors",
    Path("scheduler") / "scheduler_config.json",
    TEMPORAL,
    INFLATION,
)


def weights_folder() -> Path:
    """Where the shipped weights of ``zoo:moving-digits`` are."""
    return WEIGHTS_DIR / NAME


def is_trained(folder) -> bool:
    """Whether ``folder`` holds every file of a trained space-time prior."""
    return all((Path(folder) / f).is_file() for f in _FILES)


def read_record(folder) -> dict:
    path = Path(folder) / "recipe.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def load_space_time(
    folder,
    *,
    num_frames: int | None = None,
    device=None,
    dtype=None,
    clip_x0: bool | None = None,
    channels_last: bool | None = None,
    name: str | None = None,
):
    """The :class:`~diff_video.prior.SpaceTimePrior` saved in ``folder`` (see the module docstring)."""
    from diff_video.inflate import Inflation, inflate
    from diff_video.prior import SpaceTimePrior
    from diffcore.adapters.diffusers_prior import find_scheduler_config
    from diffcore.weights import check_model_folder, from_pretrained, load_state_dict

    folder = Path(folder)
    if not is_trained(folder):
        missing = [str(f) for f in _FILES if not (folder / f).is_file()]
        raise CheckpointError(f"{folder} is not a space-time prior folder: it lacks {', '.join(missing)}")
    check_model_folder(folder, components=["unet", "temporal"])
    from diffusers import UNet2DModel

    unet = from_pretrained(UNet2DModel, folder, subfolder="unet", torch_dtype=torch.float32)
    try:
        settings = Inflation(**json.loads((folder / INFLATION).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"cannot read {folder / INFLATION}: {exc}") from None
    network = inflate(unet, copy=False, **settings.as_dict())
    tensors = load_state_dict(folder / TEMPORAL)
    own = dict(network.named_parameters())
    unknown = sorted(set(tensors) - set(own))
    missing = sorted(n for n in own if "temporal" in n and n not in tensors)
    if unknown or missing:
        raise CheckpointError(
            f"{folder / TEMPORAL} does not fit the inflated network ({len(missing)} missing, {len(unknown)} unknown tensors)"
        )
    with torch.no_grad():
        for n, t in tensors.items():
            if own[n].shape != t.shape:
                raise CheckpointError(f"{folder / TEMPORAL}: {n!r} has shape {tuple(t.shape)}; the network's is {tuple(own[n].shape)}")
            own[n].copy_(t.float())
    record = read_record(folder)
    classes = record.get("classes")
    n_classes = unet.config.num_class_embeds
    labels = {} if not n_classes else {"null_label": n_classes - 1, "class_names": tuple(classes or range(n_classes - 1))}
    on_cpu = device is None or torch.device(device).type == "cpu"
    prior = SpaceTimePrior(
        network,
        find_scheduler_config(folder),
        num_frames=int(num_frames or record.get("default_frames") or 8),
        device=device,
        dtype=dtype,
        clip_x0=clip_x0,
        channels_last=on_cpu if channels_last is None else channels_last,
        owned=True,
        **labels,
    )
    if name:
        prior.name = name
    return prior


def load(path=None, frames: int | None = None, device=None, dtype=None, clip_x0=None):
    """``zoo:moving-digits`` (the shipped weights, or a folder ``path`` that training wrote)."""
    folder = Path(path) if path is not None else weights_folder()
    if not is_trained(folder):
        where = "are not shipped in this installation" if path is None else f"are not in {folder}"
        raise DiffcoreError(
            f"the weights of zoo:{NAME} {where}: train them with `diffcore video train --out DIR` and load them with "
            f"diffcore.create('prior', 'zoo:{NAME}', path=DIR)"
        )
    return load_space_time(folder, num_frames=frames, device=device, dtype=dtype, clip_x0=clip_x0, name=f"zoo:{NAME}")


__all__ = ["NAME", "WEIGHTS_DIR", "is_trained", "load", "load_space_time", "read_record", "weights_folder"]
