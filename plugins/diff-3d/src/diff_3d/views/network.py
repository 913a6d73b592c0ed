"""The network of a view-conditioned prior: a UNet that sees the noisy target view beside the reference
view, with the relative pose added to its time embedding.

Zero-1-to-3 (Liu et al. 2023, sec. 3.2) conditions Stable Diffusion's UNet on the reference twice:
its latent concatenated to the noisy latent along the channels, and a CLIP embedding of it joined
with the relative pose in the cross-attention. This pixel-space network keeps the first (the
reference image concatenated to ``x_t``, ``2 C`` input channels) and replaces the second by what a
small model trained from scratch can use: the 12 numbers of the relative pose
(:func:`diff_3d.views.poses.relative_pose`: rotation and translation, the translation divided by
``translation_scale``) through a two-layer MLP, added to the time embedding (the "identity" class
embedding of diffusers' ``UNet2DModel``), as camera embeddings are in 3DiM (Watson et al. 2022)
and in diff-3d's VSD.

A reference of zeros with a pose of zeros is the unconditional input (the condition dropped in
training for classifier-free guidance).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetworkConfig:
    """The UNet's size: ``size`` pixels square, ``channels`` colour channels, diffusers' ``block_out_channels`` and
    ``layers_per_block``, attention at the blocks where ``attention`` is True, ``pose_hidden`` units in the pose MLP."""

    size: int = 32
    channels: int = 3
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 2
    attention: tuple[bool, ...] = (False, True, True)
    attention_head_dim: int = 32
    norm_num_groups: int = 16
    pose_hidden: int = 256
    translation_scale: float = 2.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> NetworkConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
        return cls(**values)


def pose_features(relative: torch.Tensor, translation_scale: float) -> torch.Tensor:
    """The 12 numbers (N, 12) of relative poses (N, 3, 4): the rotation's 9, then the translation divided by ``translation_scale``."""
    rel = relative[:, :3, :4]
    return torch.cat([rel[:, :, :3].reshape(-1, 9), rel[:, :, 3] / translation_scale], dim=-1)


class ViewUNet(nn.Module):
    """``forward(x_t, timestep, reference, relative) -> eps`` (see the module docstring)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        from diffusers import UNet2DModel

        self.config = config
        down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in config.attention)
        up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention))
        self.unet = UNet2DModel(
            sample_size=config.size,
            in_channels=2 * config.channels,
            out_channels=config.channels,
            block_out_channels=tuple(config.block_out_channels),
            layers_per_block=config.layers_per_block,
            down_block_types=down,
            up_block_types=up,
            attention_head_dim=config.attention_head_dim,
            norm_num_groups=config.norm_num_groups,
            class_embed_type="identity",
        )
        embed = 4 * config.block_out_channels[0]  # UNet2DModel's time embedding width
        self.pose = nn.Sequential(nn.Linear(12, config.pose_hidden), nn.SiLU(), nn.Linear(config.pose_hidden, embed))

    def forward(self, x_t: torch.Tensor, timestep: torch.Tensor, reference: torch.Tensor, relative: torch.Tensor) -> torch.Tensor:
        pose = self.pose(pose_features(relative.to(x_t.dtype), self.config.translation_scale))
        return self.unet(torch.cat([x_t, reference.to(x_t.dtype)], dim=1), timestep, class_labels=pose, return_dict=False)[0]
