"""``inflate``: a space-time network from any diffusers 2-D UNet, factorised into spatial and temporal layers.

Following Video Diffusion Models (Ho et al. 2022, sec. 3: a 2-D UNet whose spatial layers see
each frame alone, with attention across frames added), Make-A-Video (Singer et al. 2022,
pseudo-3-D convolutions) and Video LDM (Blattmann et al. 2023, temporal layers on a frozen image
model), :func:`inflate` inserts after every spatial layer of the image UNet

- a :class:`~diff_video.temporal.TemporalConvolution` after each ResNet block, and
- a :class:`~diff_video.temporal.TemporalAttention` after each spatial attention layer,

each zero-initialised, so that the inflated network at the start computes exactly the image
network applied to every frame. The temporal layers live inside the blocks they follow
(``down_blocks.1.temporal_attentions.0``, ``mid_block.temporal_convs.1``): their names contain
``temporal``, so :func:`diffcore.layers.select_parameters` (``"temporal"``) selects them,
:func:`diffcore.training.train_only` trains only them, and :mod:`diffcore.attention` classifies
them as temporal with their block and resolution.

The inflated network is still the image UNet's class: the temporal layers run as forward hooks
of the spatial layers they follow, and only while :func:`frames` says how many frames a batch
holds. :func:`video_forward` runs it on videos ``(N, F, C, H, W)`` (one time per video or per
frame); called directly on images it is the image model, unchanged.

>>> import torch
>>> from diffusers import UNet2DModel
>>> image = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), norm_num_groups=8,
...                     down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"))
>>> video = inflate(image)
>>> x = torch.randn(2, 3, 1, 8, 8)
>>> per_frame = image(x.flatten(0, 1), 10).sample.unflatten(0, (2, 3))
>>> bool((video_forward(video, x, 10) - per_frame).abs().max() < 1e-5)
True
"""

from __future__ import annotations

import contextlib
import copy as _copy
from dataclasses import asdict, dataclass

import torch

from diff_video.temporal import FrameState, TemporalAttention, TemporalConvolution
from diffcore.errors import DiffcoreError, ShapeError

STATE = "frame_state"


@dataclass(frozen=True)
class Inflation:
    """How a network was inflated (saved with its weights so that loading rebuilds the same layers)."""

    convolution: bool = True
    attention: bool = True
    kernel: int = 3
    head_dim: int = 32
    max_frames: int = 64

    def as_dict(self) -> dict:
        return asdict(self)


def _blocks(unet):
    blocks = [*getattr(unet, "down_blocks", ())]
    if getattr(unet, "mid_block", None) is not None:
        blocks.append(unet.mid_block)
    blocks.extend(getattr(unet, "up_blocks", ()))
    return blocks


def _channels_after(module) -> int:
    """The channel count of what a spatial layer outputs."""
    for attribute in ("out_channels", "in_channels", "query_dim"):
        value = getattr(module, attribute, None)
        if isinstance(value, int):
            return value
        value = getattr(getattr(module, "config", None), attribute, None)
        if isinstance(value, int):
            return value
    raise DiffcoreError(
        f"cannot tell the output channels of {type(module).__name__}; inflate supports diffusers' ResNet and attention blocks"
    )


def is_inflated(network) -> bool:
    """Whether ``network`` came from :func:`inflate`."""
    return isinstance(getattr(network, STATE, None), FrameState)


def inflate(
    image_unet,
    *,
    convolution: bool = True,
    attention: bool = True,
    kernel: int = 3,
    head_dim: int = 32,
    max_frames: int = 64,
    copy: bool = True,
):
    """The space-time network of a diffusers ``UNet2DModel`` or ``UNet2DConditionModel`` (see the module docstring).

    Args:
        image_unet: the image network; with ``copy=True`` (default) it is left as it was and the
            inflated network is a deep copy, otherwise it is inflated in place.
        convolution: insert a temporal convolution of ``kernel`` frames after each ResNet block.
        attention: insert temporal attention (heads of ``head_dim`` channels, sinusoidal frame
            positions for up to ``max_frames`` frames) after each spatial attention layer.

    The new layers are on the image network's device and in its dtype; every parameter keeps its
    ``requires_grad`` (select what trains with :func:`diffcore.training.train_only`, e.g. ``"temporal"``).
    """
    if not isinstance(image_unet, torch.nn.Module) or not hasattr(image_unet, "down_blocks"):
        raise DiffcoreError(f"inflate takes a diffusers 2-D UNet (UNet2DModel or UNet2DConditionModel), got {type(image_unet).__name__}")
    if is_inflated(image_unet):
        raise DiffcoreError("this network is already inflated")
    if not (convolution or attention):
        raise DiffcoreError("inflate needs temporal convolutions, temporal attention or both")
    settings = Inflation(bool(convolution), bool(attention), int(kernel), int(head_dim), int(max_frames))
    network = _copy.deepcopy(image_unet) if copy else image_unet
    param = next(network.parameters())
    state = FrameState()
    inserted = 0
    for block in _blocks(network):
        if settings.convolution and getattr(block, "resnets", None):
            layers = torch.nn.ModuleList(TemporalConvolution(_channels_after(r), state, kernel=settings.kernel) for r in block.resnets)
            block.temporal_convs = layers
            for spatial, temporal in zip(block.resnets, layers):
                spatial.register_forward_hook(temporal.after_spatial)
            inserted += len(layers)
        spatial_attentions = [a for a in (getattr(block, "attentions", None) or ()) if a is not None]
        if settings.attention and spatial_attentions:
            layers = torch.nn.ModuleList(
                TemporalAttention(_channels_after(a), state, head_dim=settings.head_dim, max_frames=settings.max_frames)
                for a in spatial_attentions
            )
            block.temporal_attentions = layers
            for spatial, temporal in zip(spatial_attentions, layers):
                spatial.register_forward_hook(temporal.after_spatial)
            inserted += len(layers)
    if not inserted:
        raise DiffcoreError(f"{type(image_unet).__name__} has no ResNet or attention blocks to inflate")
    for module in network.modules():
        if isinstance(module, (TemporalConvolution, TemporalAttention)):
            module.to(device=param.device, dtype=param.dtype)
    # plain attributes (not submodules): the shared frame count and the settings
    network.__dict__[STATE] = state
    network.__dict__["inflation"] = settings
    return network


def _state(network) -> FrameState:
    if not is_inflated(network):
        raise DiffcoreError(f"{type(network).__name__} is not an inflated network; build one with diff_video.inflate.inflate(image_unet)")
    return network.__dict__[STATE]


@contextlib.contextmanager
def frames(network, count: int):
    """Run ``network``'s temporal layers on batches of videos of ``count`` consecutive frames for the block's duration."""
    state = _state(network)
    limit = network.inflation.max_frames if network.inflation.attention else None
    if count < 1 or (limit is not None and count > limit):
        raise ShapeError(f"this network takes 1 to {limit} frames, got {count}")
    previous, state.frames = state.frames, int(count)
    try:
        yield network
    finally:
        state.frames = previous


def per_frame(value, n: int, f: int, what: str) -> torch.Tensor | None:
    """A per-video tensor (N, ...) repeated for each of the F frames: (N * F, ...)."""
    if value is None:
        return None
    value = torch.as_tensor(value)
    if value.shape[0] == 1 and n > 1:
        value = value.expand(n, *value.shape[1:])
    if value.shape[0] != n:
        raise ShapeError(f"{what} has batch {value.shape[0]}; expected 1 or {n} to match the videos")
    return value.repeat_interleave(f, dim=0)


def frame_times(timestep, n: int, f: int, device) -> torch.Tensor:
    """Network timesteps for (N * F) frames from a scalar, one per video (N,) or one per frame (N, F)."""
    timestep = torch.as_tensor(timestep, device=device)
    if timestep.ndim == 0:
        return timestep.expand(n * f)
    if timestep.shape == (n,):
        return timestep.repeat_interleave(f)
    if timestep.shape == (n, f):
        return timestep.reshape(n * f)
    raise ShapeError(f"timestep has shape {tuple(timestep.shape)}; expected a scalar, ({n},) or ({n}, {f})")


def video_forward(network, sample: torch.Tensor, timestep, *, class_labels=None, encoder_hidden_states=None, call=None) -> torch.Tensor:
    """The inflated ``network`` on videos ``sample`` (N, F, C, H, W); returns (N, F, C_out, H, W).

    ``timestep`` is a scalar, one per video (N,) or one per frame (N, F); ``class_labels`` (N,)
    and ``encoder_hidden_states`` (N, L, D) are per video (batch 1 broadcasts). ``call(frames,
    timesteps, **kwargs)`` runs the network on the frames (default: ``network`` itself).
    """
    if sample.ndim != 5:
        raise ShapeError(f"sample has shape {tuple(sample.shape)}; expected videos (N, F, C, H, W)")
    n, f = sample.shape[:2]
    kwargs = {}
    if class_labels is not None:
        kwargs["class_labels"] = per_frame(class_labels, n, f, "class_labels").to(sample.device)
    if encoder_hidden_states is not None:
        kwargs["encoder_hidden_states"] = per_frame(encoder_hidden_states, n, f, "encoder_hidden_states").to(sample.device)
    with frames(network, f):
        out = (call or network)(
            sample.reshape(n * f, *sample.shape[2:]), frame_times(timestep, n, f, sample.device), return_dict=False, **kwargs
        )[0]
    return out.reshape(n, f, *out.shape[1:])


__all__ = ["Inflation", "frame_times", "frames", "inflate", "is_inflated", "per_frame", "video_forward"]
