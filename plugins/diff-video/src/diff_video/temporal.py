"""The temporal layers that :func:`diff_video.inflate.inflate` inserts after a 2-D UNet's spatial layers.

Both work on the frames of a batch laid out as the image UNet sees them, ``(N * F, C, H, W)``
with the frames of one video consecutive, and both are residual with a zero-initialised last
projection, so that a freshly inserted layer is the identity and the inflated network starts
as the image network applied to every frame (Singer et al. 2022, Make-A-Video, sec. 3.2;
Blattmann et al. 2023, Video LDM, sec. 3.1):

- :class:`TemporalConvolution`: ``x + conv_t(SiLU(norm(conv_t(SiLU(norm(x))))))`` with
  convolutions of ``kernel`` frames at each pixel (a ``(k, 1, 1)`` 3-D convolution, the
  pseudo-3-D convolution of Make-A-Video), the last one zero-initialised;
- :class:`TemporalAttention`: ``x + Attention(norm(x) + pos)`` where each pixel attends to the
  same pixel in the other frames of its video, ``pos`` a sinusoidal encoding of the frame index
  (AnimateDiff's motion modules, Guo et al. 2023) and the attention's output projection
  zero-initialised. The attention is diffusers' ``Attention``, so attention control and
  parameter selection (:mod:`diffcore.layers`) see it as a temporal layer.

The frame count is not an argument of the image UNet's blocks: a :class:`FrameState` shared by
the layers of one network holds it for the duration of a call (:class:`diff_video.inflate.SpaceTimeUNet`
sets it). Outside such a call ``frames`` is None and every temporal layer passes its input through,
so the image UNet inside an inflated network still runs alone as the image model.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class FrameState:
    """The frame count of the call in progress (None outside one), shared by one network's temporal layers."""

    def __init__(self):
        self.frames: int | None = None


def _groups(channels: int, most: int = 32) -> int:
    return math.gcd(channels, most)


def sinusoidal_positions(frames: int, dim: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The (frames, dim) sinusoidal encoding of Vaswani et al. (2017, sec. 3.5) for frame indices 0..frames-1."""
    half = dim // 2
    position = torch.arange(frames, device=device, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float64) / max(half, 1))
    angles = position * freq[None]
    table = torch.cat([angles.sin(), angles.cos()], 1)
    if dim % 2:
        table = torch.cat([table, table.new_zeros(frames, 1)], 1)
    return table.to(dtype)


class TemporalLayer(nn.Module):
    """A residual layer across frames, run as a forward hook after one spatial layer of the image UNet."""

    def __init__(self, state: FrameState):
        super().__init__()
        # A plain attribute, not a submodule: the state is shared, and deep copies keep it shared.
        self.__dict__["state"] = state

    def after_spatial(self, module, args, output):
        """The forward hook: the spatial layer's output (a tensor, a tuple or a diffusers output) with this layer applied."""
        if self.state.frames is None:
            return output
        if isinstance(output, torch.Tensor):
            return self(output)
        if isinstance(output, tuple):
            return (self(output[0]), *output[1:])
        if hasattr(output, "sample"):
            output.sample = self(output.sample)
            return output
        raise TypeError(f"cannot apply a temporal layer after {type(module).__name__}: it returned {type(output).__name__}")

    def videos(self, x: torch.Tensor) -> torch.Tensor:
        """(N * F, C, H, W) -> (N, C, F, H, W)."""
        frames = self.state.frames
        if x.shape[0] % frames:
            raise RuntimeError(f"a batch of {x.shape[0]} frames does not split into videos of {frames}")
        return x.reshape(x.shape[0] // frames, frames, *x.shape[1:]).transpose(1, 2)

    @staticmethod
    def frames_back(v: torch.Tensor) -> torch.Tensor:
        """(N, C, F, H, W) -> (N * F, C, H, W)."""
        return v.transpose(1, 2).reshape(-1, v.shape[1], *v.shape[3:])


class TemporalConvolution(TemporalLayer):
    """Two convolutions over ``kernel`` frames at each pixel, residual, the second zero-initialised."""

    def __init__(self, channels: int, state: FrameState, *, kernel: int = 3):
        super().__init__(state)
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and positive, got {kernel}")
        pad = (kernel // 2, 0, 0)
        self.norm1 = nn.GroupNorm(_groups(channels), channels)
        self.conv1 = nn.Conv3d(channels, channels, (kernel, 1, 1), padding=pad)
        self.norm2 = nn.GroupNorm(_groups(channels), channels)
        self.conv2 = nn.Conv3d(channels, channels, (kernel, 1, 1), padding=pad)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.videos(x)
        h = self.conv1(nn.functional.silu(self.norm1(v)))
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return x + self.frames_back(h)


class TemporalAttention(TemporalLayer):
    """Self-attention across the frames of a video at each pixel, residual, the output projection zero-initialised."""

    def __init__(self, channels: int, state: FrameState, *, head_dim: int = 32, max_frames: int = 64):
        super().__init__(state)
        from diffusers.models.attention_processor import Attention

        heads = max(1, channels // head_dim)
        self.max_frames = int(max_frames)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attention = Attention(query_dim=channels, heads=heads, dim_head=channels // heads, bias=True)
        nn.init.zeros_(self.attention.to_out[0].weight)
        nn.init.zeros_(self.attention.to_out[0].bias)
        self.register_buffer("positions", sinusoidal_positions(self.max_frames, channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.videos(x)
        n, c, f, h, w = v.shape
        if f > self.max_frames:
            raise RuntimeError(f"temporal attention takes at most {self.max_frames} frames, got {f}")
        tokens = self.norm(v).permute(0, 3, 4, 2, 1).reshape(n * h * w, f, c)
        tokens = tokens + self.positions[:f].to(tokens.dtype)
        out = self.attention(tokens)
        out = out.reshape(n, h, w, f, c).permute(0, 4, 3, 1, 2)
        return x + self.frames_back(out)


__all__ = ["FrameState", "TemporalAttention", "TemporalConvolution", "TemporalLayer", "sinusoidal_positions"]
