"""A triplane: three axis-aligned feature planes and a small decoder (Chan et al. 2022, EG3D, sec. 3).

A point's feature is the sum of the bilinear samples of the planes xy, xz and yz at its
projections; an MLP (one hidden layer) maps it to density ``softplus(h_0 - shift)`` and colour
``tanh(h_1..C)``. Fewer parameters than a grid of the same resolution (``3 F R^2`` instead of
``(1 + C) R^3``) and smoother in the hidden directions.

>>> import torch
>>> from diff_3d.cameras import orbit_cameras
>>> planes = Triplane(resolution=8, features=4, samples=16)
>>> planes.render(orbit_cameras(torch.tensor([0.0]), 20.0, 2.5, size=4)).shape
torch.Size([1, 3, 4, 4])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diff_3d.representations.volume import VolumeRepresentation
from diffcore.errors import DiffcoreError

PLANES = ((0, 1), (0, 2), (1, 2))  # xy, xz, yz


class Triplane(VolumeRepresentation):
    """Three ``features`` x ``resolution`` x ``resolution`` planes and a ``hidden``-wide decoder.

    Args:
        resolution: texels per side of each plane; features: channels per plane; hidden: decoder width.
        half_size, samples, background, channels: as for :class:`VolumeRepresentation`.
        shift: the density offset, ``softplus(h_0 - shift)``.
        seed: the planes start as small Gaussian noise from this seed (the decoder from torch's default init under it).
    """

    def __init__(
        self,
        resolution: int = 32,
        features: int = 8,
        hidden: int = 32,
        *,
        half_size: float = 1.0,
        samples: int = 64,
        background=1.0,
        channels: int = 3,
        shift: float = 4.0,
        seed: int = 0,
    ):
        super().__init__(half_size=half_size, samples=samples, background=background, channels=channels)
        if int(resolution) < 2 or int(features) < 1 or int(hidden) < 1:
            raise DiffcoreError(f"triplane resolution must be >= 2 and features, hidden >= 1, got {resolution}, {features}, {hidden}")
        self.resolution, self.shift = int(resolution), float(shift)
        generator = torch.Generator().manual_seed(int(seed))
        self.planes = torch.nn.Parameter(0.1 * torch.randn(3, int(features), self.resolution, self.resolution, generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.decoder = torch.nn.Sequential(
                torch.nn.Linear(int(features), int(hidden)), torch.nn.SiLU(), torch.nn.Linear(int(hidden), 1 + self.channels)
            )

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """The summed plane features (P, F) at world points (P, 3)."""
        p = self.normalized(points).to(self.planes)
        coords = torch.stack([p[:, list(axes)] for axes in PLANES])  # (3, P, 2)
        sampled = F.grid_sample(self.planes, coords[:, :, None, :], mode="bilinear", align_corners=True)  # (3, F, P, 1)
        return sampled[..., 0].sum(dim=0).T

    def field(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.decoder(self.features(points))
        inside = (self.normalized(points).abs() <= 1).all(dim=-1)
        return F.softplus(h[:, 0] - self.shift) * inside, torch.tanh(h[:, 1:])
