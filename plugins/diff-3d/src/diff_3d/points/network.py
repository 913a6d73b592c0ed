"""The point-voxel denoiser of ``zoo:shapes``: PVD's network idea at a size a CPU trains.

Zhou et al. (2021), "3D Shape Generation and Completion through Point-Voxel Diffusion" (PVD), denoise
a point cloud with Liu et al.'s (2019) point-voxel convolution (PVCNN): each block sees the points
twice, through a coarse voxel grid (neighbourhoods, by 3-D convolutions) and point by point (a
shared MLP, fine detail without the grid's quantisation). Here a block (:class:`PointVoxelBlock`) is

- voxel branch: the points' features averaged into the ``r^3`` cells of a grid spanning the cloud
  (coordinates centred on the cloud's mean and scaled by twice its largest radius, PVCNN's
  normalisation, so a noisy cloud fits too), two 3x3x3 convolutions with group norm and SiLU, and the
  result read back at every point by trilinear interpolation;
- point branch: a two-layer MLP on each point's features;
- global branch: the features' maximum over the points (PointNet's symmetric function, Qi et al. 2017),
  a linear map, added to every point (the shape's class and extent reach every point in one block);

summed into a residual stream, with the time (sinusoidal, as the DDPM UNet) and the class label
embedded and added before each block. PVD's set-abstraction hierarchy (farthest-point sampling and
feature propagation) is left out: the clouds are small (512 points) and the grid is the coarse path.
The network is equivariant to the order of the points and takes any number of them.

>>> import torch
>>> net = PointVoxelNet(width=16, resolution=4, blocks=1, classes=5, voxel_width=8)
>>> x = torch.randn(2, 64, 3, generator=torch.Generator().manual_seed(0))
>>> out = net(x, torch.tensor([10.0, 500.0]), torch.tensor([0, 5]))
>>> out.shape, bool(torch.allclose(net(x.flip(1), torch.tensor([10.0, 500.0]), torch.tensor([0, 5])), out.flip(1), atol=1e-5))
(torch.Size([2, 64, 3]), True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embeddings (N, dim) of the network times ``t`` (N,) (Vaswani et al. 2017; Ho et al. 2020's UNet)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def grid_coordinates(points: torch.Tensor, resolution: int, eps: float = 1e-6) -> torch.Tensor:
    """Points (N, P, 3) in grid units ``[0, r - 1]``: centred on each cloud's mean, scaled by twice its largest radius (PVCNN)."""
    centred = points - points.mean(dim=1, keepdim=True)
    radius = centred.norm(dim=2, keepdim=True).amax(dim=1, keepdim=True)
    unit = centred / (2 * radius + eps) + 0.5  # in [0, 1]
    return (unit * (resolution - 1)).clamp(0, resolution - 1)


def voxelize(features: torch.Tensor, coords: torch.Tensor, resolution: int) -> torch.Tensor:
    """Features (N, P, C) averaged into the cells (N, C, r, r, r) that hold the points' nearest grid nodes ``coords`` (N, P, 3)."""
    n, p, c = features.shape
    r = resolution
    cell = coords.round().long()
    flat = (cell[..., 0] * r + cell[..., 1]) * r + cell[..., 2]  # (N, P)
    sums = features.new_zeros(n, r**3, c).scatter_add_(1, flat[..., None].expand(-1, -1, c), features)
    counts = features.new_zeros(n, r**3).scatter_add_(1, flat, torch.ones_like(flat, dtype=features.dtype))
    mean = sums / counts.clamp_min(1)[..., None]
    return mean.transpose(1, 2).reshape(n, c, r, r, r)


def devoxelize(grid: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The grid's features (N, C, r, r, r) trilinearly interpolated at ``coords`` (N, P, 3) in grid units -> (N, P, C)."""
    r = grid.shape[-1]
    unit = coords / (r - 1) * 2 - 1  # grid_sample's [-1, 1]; its last axis is (W, H, D) = (z, y, x) of the grid
    sample = F.grid_sample(grid, unit.flip(-1)[:, :, None, None, :], mode="bilinear", align_corners=True)  # (N, C, P, 1, 1)
    return sample[..., 0, 0].transpose(1, 2)


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


class PointVoxelBlock(nn.Module):
    """A residual block of point-voxel convolution (see the module docstring): voxel, point and global branches summed."""

    def __init__(self, width: int, resolution: int, embedding: int, voxel_width: int):
        super().__init__()
        self.resolution = int(resolution)
        self.condition = nn.Linear(embedding, width)
        self.norm = nn.LayerNorm(width)
        if self.resolution > 1:
            v = int(voxel_width)
            self.to_voxel, self.from_voxel = nn.Linear(width, v), nn.Linear(v, width)
            self.voxel = nn.Sequential(
                nn.Conv3d(v, v, 3, padding=1),
                nn.GroupNorm(_groups(v), v),
                nn.SiLU(),
                nn.Conv3d(v, v, 3, padding=1),
                nn.GroupNorm(_groups(v), v),
                nn.SiLU(),
            )
        else:
            self.voxel = None
        self.point = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.glob = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, coords: torch.Tensor | None, embedding: torch.Tensor) -> torch.Tensor:
        x = self.norm(h + self.condition(embedding)[:, None, :])
        out = self.point(x) + self.glob(x.amax(dim=1))[:, None, :]
        if self.voxel is not None:
            grid = self.voxel(voxelize(self.to_voxel(x), coords, self.resolution))
            out = out + self.from_voxel(devoxelize(grid, coords))
        return h + out


class PointVoxelNet(nn.Module):
    """The denoiser: points (N, P, 3), network times (N,) and labels (N,) -> the noise (N, P, 3).

    Args:
        width: channels of the residual stream; resolution: the voxel grid's cells per side (0 or 1:
            no voxel branch, a point network with a global feature); voxel_width: the grid's channels
            (the points' features are projected to them and back); blocks: residual blocks;
        classes: class labels (label ``classes`` is the null class of classifier-free guidance;
            0: unconditional).
    """

    def __init__(self, width: int = 64, resolution: int = 8, blocks: int = 4, classes: int = 0, voxel_width: int = 32):
        super().__init__()
        self.width, self.resolution, self.classes, self.voxel_width = int(width), int(resolution), int(classes), int(voxel_width)
        embedding = 4 * self.width
        self.time = nn.Sequential(nn.Linear(self.width, embedding), nn.SiLU(), nn.Linear(embedding, embedding))
        self.label = nn.Embedding(self.classes + 1, embedding) if self.classes else None
        self.embed = nn.Linear(3, self.width)
        self.blocks = nn.ModuleList(PointVoxelBlock(self.width, self.resolution, embedding, self.voxel_width) for _ in range(int(blocks)))
        self.out_norm = nn.LayerNorm(self.width)
        self.out = nn.Linear(self.width, 3)
        nn.init.zeros_(self.out.weight)  # starts predicting zero noise (a stable start for epsilon prediction)
        nn.init.zeros_(self.out.bias)

    def config(self) -> dict:
        """The constructor's arguments (what a saved network records)."""
        return {
            "width": self.width,
            "resolution": self.resolution,
            "blocks": len(self.blocks),
            "classes": self.classes,
            "voxel_width": self.voxel_width,
        }

    def forward(self, points: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time(timestep_embedding(t.reshape(-1).expand(points.shape[0]), self.width).to(points.dtype))
        if self.label is not None:
            if labels is None:
                labels = torch.full((points.shape[0],), self.classes, dtype=torch.long, device=points.device)
            emb = emb + self.label(labels.reshape(-1).expand(points.shape[0]))
        emb = F.silu(emb)
        coords = grid_coordinates(points, self.resolution) if self.resolution > 1 else None
        h = self.embed(points)
        for block in self.blocks:
            h = block(h, coords, emb)
        return self.out(self.out_norm(h))
