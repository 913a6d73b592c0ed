"""The base of diff-3d's field representations: a density and colour field in a box, volume rendered.

A subclass implements ``field(points) -> (density (P,), colour (P, C) in [-1, 1])``; this base
renders it (:func:`diff_3d.rendering.render_rays`) and gives the
:class:`~diffcore.protocols.Representation3D` contract: ``render``, ``render_outputs`` (rgb, depth,
accumulation, normals), ``density``, ``colors``, ``bounds`` and ``parameters()``, plus
``render_rays(origins, directions)`` for renderers that bring their own rays (nerfstudio's
``RayBundle``), ``regularisation(outputs)``, the representation's own loss terms (none here), and
``render_for_training(camera)``, the renders with those terms.
"""

from __future__ import annotations

import torch

from diff_3d.cameras import camera_rays
from diff_3d.rendering import images, render_camera, render_rays
from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera, Rendering


def box(half_size: float) -> torch.Tensor:
    """The corners (2, 3) of the cube ``[-half_size, half_size]^3``."""
    if not half_size > 0:
        raise DiffcoreError(f"the content's box half-size must be positive, got {half_size}")
    return torch.tensor([[-half_size] * 3, [half_size] * 3], dtype=torch.float32)


def colour(background, channels: int) -> torch.Tensor:
    """A background colour in [-1, 1] as a (channels,) tensor from a number or a sequence."""
    value = torch.as_tensor(background, dtype=torch.float32).reshape(-1)
    if value.numel() == 1:
        value = value.expand(channels)
    if value.numel() != channels or bool((value.abs() > 1).any()):
        raise DiffcoreError(f"background must be {channels} values in [-1, 1] (or one), got {value.tolist()}")
    return value.clone()


class VolumeRepresentation(torch.nn.Module):
    """A field in the box ``[-half_size, half_size]^3``, rendered with ``samples`` points per ray over ``background``."""

    def __init__(self, *, half_size: float = 1.0, samples: int = 64, background=1.0, channels: int = 3):
        super().__init__()
        if int(samples) < 2:
            raise DiffcoreError(f"samples per ray must be at least 2, got {samples}")
        if int(channels) < 1:
            raise DiffcoreError(f"channels must be positive, got {channels}")
        self.samples, self.channels = int(samples), int(channels)
        self.register_buffer("bounds", box(float(half_size)))
        self.register_buffer("background", colour(background, self.channels))

    def field(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def normalized(self, points: torch.Tensor) -> torch.Tensor:
        """World points mapped to [-1, 1]^3 across the box."""
        lo, hi = self.bounds[0], self.bounds[1]
        return 2 * (points - lo) / (hi - lo) - 1

    def render_rays(self, origins: torch.Tensor, directions: torch.Tensor, *, normals: bool = False) -> dict[str, torch.Tensor]:
        """Outputs of rays (R, 3): ``rgb`` (R, C), ``depth``, ``accumulation`` (R, 1), ``weights`` and, when asked, ``normals``."""
        return render_rays(self.field, origins, directions, self.bounds, samples=self.samples, background=self.background, normals=normals)

    def render_outputs(self, camera: Camera, *, normals: bool = True) -> Rendering:
        return render_camera(self.render_rays, camera, normals=normals)

    def render(self, camera: Camera) -> torch.Tensor:
        return self.render_outputs(camera, normals=False).rgb

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self.field(points)[0]

    def colors(self, points: torch.Tensor) -> torch.Tensor:
        return self.field(points)[1]

    def regularisation(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms of the representation itself for the outputs of :meth:`render_rays` (none for a plain field)."""
        return {}

    def render_for_training(self, camera: Camera) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The rgb images of ``camera`` and the representation's loss terms of that render."""
        origins, directions = camera_rays(camera)
        outputs = self.render_rays(origins.reshape(-1, 3), directions.reshape(-1, 3))
        return images(outputs, camera).rgb, self.regularisation(outputs)
