"""The video prior of an inflated image UNet: pixel videos (N, F, C, H, W), one time per video or per frame.

:class:`SpaceTimePrior` reads a network made by :func:`diff_video.inflate.inflate` through its
scheduler config exactly as diffcore's :class:`~diffcore.adapters.diffusers_prior.DiffusersUNetPrior`
reads the image UNet it came from (same schedule, prediction type, clipping, class labels), and
runs it on videos through :func:`diff_video.inflate.video_forward`. The network's frames are
independent items for its spatial layers, so ``t`` may be one time per frame (N, F) as well as
one per video: frames at different noise levels are what conditional generation by replacement
and frame-wise noising need. It is :class:`~diffcore.protocols.Trainable` (``network_output``),
and :func:`diffcore.training.train_only` with ``"temporal"`` trains only the inserted layers.

:func:`image_prior` is the image model inside (the inflated network with its temporal layers
idle), the frames-independent baseline.
"""

from __future__ import annotations

import torch

from diff_video.inflate import inflate, is_inflated, video_forward
from diffcore.adapters.diffusers_prior import DiffusersUNetPrior, _first
from diffcore.adapters.video import VideoPriorMixin
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond


class SpaceTimePrior(VideoPriorMixin, DiffusersUNetPrior):
    """A pixel video prior from an inflated ``UNet2DModel`` (see the module docstring).

    Args:
        network: an inflated ``UNet2DModel`` (class-conditional ones accept ``Cond(labels=...)``,
            one label per video).
        scheduler_config: the image model's scheduler config.
        num_frames: the frame count of ``sample_shape``; the network takes any count up to its
            temporal attention's ``max_frames``.
        device, dtype, clip_x0, channels_last, null_label, class_names, owned: as for
            :class:`~diffcore.adapters.diffusers_prior.DiffusersUNetPrior`.
    """

    name = "space-time"
    per_frame_time = True

    def __init__(
        self,
        network,
        scheduler_config,
        num_frames: int = 8,
        device=None,
        dtype=None,
        clip_x0: bool | None = None,
        channels_last: bool = False,
        null_label: int | None = None,
        class_names=None,
        owned: bool = False,
    ):
        if not is_inflated(network):
            raise DiffcoreError(
                f"SpaceTimePrior needs an inflated network (diff_video.inflate.inflate), got a plain {type(network).__name__}"
            )
        super().__init__(
            network,
            scheduler_config,
            device=device,
            dtype=dtype,
            clip_x0=clip_x0,
            null_label=null_label,
            class_names=class_names,
            owned=owned,
        )
        self.channels_last = bool(channels_last)
        if self.channels_last:  # the 2-D convolutions only: the temporal ones are 3-D
            for module in self.network.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.to(memory_format=torch.channels_last)
        settings = network.inflation
        self._video_init(num_frames, settings.max_frames if settings.attention else None)

    def _network(self, x, timestep, cond: Cond | None, direct: bool = False) -> torch.Tensor:
        labels = None
        if self.accepts:
            if cond is None or cond.labels is None:
                raise DiffcoreError("this video prior is class-conditional: pass cond=Cond(labels=...) with one class index per video")
            labels = _first(torch.as_tensor(cond.labels, device=x.device), x.shape[0], "cond.labels", 1)
        run = self.network if direct else self._run
        if self.channels_last:

            def call(frames, timesteps, **kwargs):
                out = run(frames.contiguous(memory_format=torch.channels_last), timesteps, **kwargs)
                return (out[0].contiguous(), *out[1:])

        else:
            call = run
        out = video_forward(self.network, x, timestep, class_labels=labels, call=call)
        return out[:, :, : x.shape[2]] if out.shape[2] == 2 * x.shape[2] else out


def image_prior(prior: SpaceTimePrior) -> DiffusersUNetPrior:
    """The image model inside ``prior``: the same network with its temporal layers idle, on images (N, C, H, W).

    Applied to each frame alone it is the un-inflated model, the frames-independent baseline.
    """
    image = DiffusersUNetPrior(
        prior.network,
        prior.scheduler_config,
        clip_x0=None if prior.threshold_x0 else prior.clip_x0,
        null_label=prior.null_label,
        class_names=prior.class_names,
    )
    # the shared network's 2-D convolutions are already in the prior's layout (its 3-D ones cannot be)
    image.channels_last = prior.channels_last
    image.owned = prior.owned
    image.name = f"{prior.name} (frames alone)"
    return image


def inflated_prior(image, *, frames: int = 8, seed: int = 0, **settings) -> SpaceTimePrior:
    """The video prior of the pixel diffusers UNet prior ``image`` inflated (:func:`diff_video.inflate.inflate` with
    ``settings``; temporal layers initialised under ``seed``): at the start, ``image`` on every frame."""
    if not isinstance(image, DiffusersUNetPrior) or image.latent is not None:
        raise DiffcoreError(f"inflating needs a pixel diffusers UNet prior (zoo:digits, diffusers:path=...), got {type(image).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        network = inflate(image.network, **settings)
    return SpaceTimePrior(
        network,
        image.scheduler_config,
        num_frames=frames,
        clip_x0=None if image.threshold_x0 else image.clip_x0,
        null_label=image.null_label,
        class_names=image.class_names,
        owned=True,
    )


__all__ = ["SpaceTimePrior", "image_prior", "inflated_prior"]
