"""Adapters that turn diffusers models into diffcore priors (needs ``pip install "diffcore[diffusers]"``).

- :class:`~diffcore.adapters.diffusers_prior.DiffusersUNetPrior` and
  :func:`~diffcore.adapters.diffusers_prior.load_unet_prior`: a pixel prior from a
  ``UNet2DModel`` and its scheduler config (registered as the ``diffusers`` prior);
- :class:`~diffcore.adapters.stable_diffusion.StableDiffusionPrior` and
  :func:`~diffcore.adapters.stable_diffusion.load_stable_diffusion`: the latent,
  text-conditional Stable Diffusion prior (registered as ``stable-diffusion``);
- :class:`~diffcore.adapters.video.VideoDiffusionPrior` and
  :func:`~diffcore.adapters.video.load_video_prior`: text-to-video UNets (``UNet3DConditionModel``,
  ``UNetMotionModel``) as a prior on ``(F, C, H, W)`` clips (registered as ``diffusers-video``).

Importing this package does not import diffusers; the submodules import it when a model is
built or loaded.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DiffusersUNetPrior",
    "StableDiffusionPrior",
    "VideoDiffusionPrior",
    "load_stable_diffusion",
    "load_unet_prior",
    "load_video_prior",
    "schedule_from_config",
]

_WHERE = {
    "DiffusersUNetPrior": "diffusers_prior",
    "load_unet_prior": "diffusers_prior",
    "schedule_from_config": "diffusers_prior",
    "StableDiffusionPrior": "stable_diffusion",
    "load_stable_diffusion": "stable_diffusion",
    "VideoDiffusionPrior": "video",
    "load_video_prior": "video",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"diffcore.adapters.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'diffcore.adapters' has no attribute {name!r}")
