"""A voxel grid of density and colour, trilinearly interpolated: the representation of Score Jacobian Chaining.

Wang et al. (2023), "Score Jacobian Chaining", sec. 5: a dense grid of ``resolution^3`` cells holds
a density and ``channels`` colour values (DVGO's explicit grid, Sun et al. 2022); a point's values
are the trilinear interpolation of its eight neighbours. Density is ``softplus(raw - shift)``
(small and smooth at the start), colour ``tanh(raw)`` in [-1, 1].

>>> import torch
>>> from diff_3d.cameras import orbit_cameras
>>> grid = VoxelGrid(resolution=8, samples=16)
>>> grid.render(orbit_cameras(torch.tensor([0.0, 90.0]), 20.0, 2.5, size=4)).shape
torch.Size([2, 3, 4, 4])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diff_3d.representations.volume import VolumeRepresentation
from diffcore.errors import DiffcoreError


class VoxelGrid(VolumeRepresentation):
    """Density and colour on a ``resolution``^3 grid over the box (see the module docstring).

    Args:
        resolution: cells per side.
        half_size, samples, background, channels: as for :class:`VolumeRepresentation`.
        shift: the density offset at the start, ``softplus(0 - shift)``.
    """

    def __init__(
        self, resolution: int = 32, *, half_size: float = 1.0, samples: int = 64, background=1.0, channels: int = 3, shift: float = 4.0
    ):
        super().__init__(half_size=half_size, samples=samples, background=background, channels=channels)
        if int(resolution) < 2:
            raise DiffcoreError(f"voxel resolution must be at least 2, got {resolution}")
        r = int(resolution)
        self.resolution, self.shift = r, float(shift)
        self.grid = torch.nn.Parameter(torch.zeros(1, 1 + self.channels, r, r, r))

    def field(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.normalized(points)
        values = F.grid_sample(self.grid, p.reshape(1, -1, 1, 1, 3).to(self.grid), mode="bilinear", align_corners=True)
        values = values.reshape(1 + self.channels, -1).T  # (P, 1 + C)
        inside = (p.abs() <= 1).all(dim=-1)
        density = F.softplus(values[:, 0] - self.shift) * inside
        return density, torch.tanh(values[:, 1:])
