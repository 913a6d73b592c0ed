"""Loading the zoo priors: the shipped weights (package data) through diffcore's diffusers adapter.

The weights of ``zoo:NAME`` live in ``diff_zoo/weights/NAME/``, a ``DDIMPipeline`` folder
(``unet/``, ``scheduler/``) with the run's ``recipe.json`` and model card. ``path=`` loads a
folder that ``diffcore zoo train NAME --out DIR`` wrote instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from diff_zoo.recipes import get_recipe
from diffcore.errors import DiffcoreError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_FILES = (Path("unet") / "config.json", Path("unet") / "diffusion_pytorch_model.safetensors", Path("scheduler") / "scheduler_config.json")


def weights_folder(name: str) -> Path:
    """Where the shipped weights of ``zoo:NAME`` are (whether or not they are there yet)."""
    return WEIGHTS_DIR / get_recipe(name).name


def is_trained(folder: Path) -> bool:
    """Whether ``folder`` holds a complete pipeline folder (UNet config and weights, scheduler config)."""
    return all((Path(folder) / f).is_file() for f in _FILES)


def read_record(folder: Path) -> dict | None:
    """The ``recipe.json`` of a trained folder, or None."""
    path = Path(folder) / "recipe.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load(name: str, path=None, device=None, dtype=None, clip_x0: bool | None = None):
    """Load ``zoo:NAME`` (shipped weights, or the trained folder ``path``) as a diffcore prior.

    The prior is a :class:`diffcore.adapters.diffusers_prior.DiffusersUNetPrior`; class-conditional
    ones also carry ``class_names``, ``null_label`` (the label that means "no class") and
    ``null_cond`` (that label as a :class:`diffcore.Cond`, for :class:`diffcore.priors.Guided` and
    :func:`diffcore.priors.unconditional`). On the CPU the network runs in channels-last layout
    (about 1.5x faster for these small UNets; the same values up to float rounding).
    """
    recipe = get_recipe(name)
    folder = Path(path) if path is not None else weights_folder(recipe.name)
    if not is_trained(folder):
        where = "are not shipped in this installation yet" if path is None else f"are not in {folder}"
        raise DiffcoreError(
            f"the weights of zoo:{recipe.name} {where}: train them with `diffcore zoo train {recipe.name} --out DIR` "
            f"and load them with diffcore.create('prior', 'zoo:{recipe.name}', path=DIR)"
        )
    from diffcore.adapters.diffusers_prior import load_unet_prior

    on_cpu = device is None or torch.device(device).type == "cpu"
    record = read_record(folder) or {}
    classes = (
        dict(null_label=recipe.n_classes, class_names=tuple(record.get("classes") or range(recipe.n_classes))) if recipe.n_classes else {}
    )
    prior = load_unet_prior(folder, device=device, dtype=dtype, clip_x0=clip_x0, channels_last=on_cpu, **classes)
    prior.name = f"zoo:{recipe.name}"
    return prior
