"""A known procedural scene: coloured Gaussian blobs, the ground truth of the distillation checks.

Density ``sigma(x) = sum_k d_k exp(-|x - m_k|^2 / (2 r_k^2))`` and colour the density-weighted mean
of the blobs' colours, shaded by a fixed light in the world (Lambertian, so every view sees the same
colour at a point: a radiance field without view dependence). Its renders are the volume rendering
of that field with many samples per ray (:func:`diff_3d.rendering.render_rays`), so a representation
that matched the field exactly would reproduce them up to its own sampling.

>>> import torch
>>> from diff_3d.cameras import orbit_cameras
>>> scene = BlobScene.default()
>>> view = scene.render_outputs(orbit_cameras(torch.tensor([30.0]), 20.0, 2.5, size=16))
>>> view.rgb.shape, bool(view.accumulation.amax() > 0.99), bool(view.accumulation.amin() < 0.01)
(torch.Size([1, 3, 16, 16]), True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_3d.rendering import render_camera, render_rays
from diff_3d.representations.volume import box, colour
from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera, Rendering


@dataclass(frozen=True, eq=False)
class BlobScene:
    """Gaussian blobs: ``centers`` (K, 3), ``radii`` (K,), ``albedos`` (K, 3) in [-1, 1], peak ``densities`` (K,).

    ``light`` is the direction towards the light; ``ambient`` the share of the colour that shading
    leaves; ``samples`` points per ray when rendering; ``background`` in [-1, 1].
    """

    centers: torch.Tensor
    radii: torch.Tensor
    albedos: torch.Tensor
    densities: torch.Tensor
    light: tuple[float, float, float] = (0.3, -0.5, 0.8)
    ambient: float = 0.6
    samples: int = 128
    background: float = 1.0
    half_size: float = 1.0

    def __post_init__(self):
        k = len(self.radii)
        shapes = {"centers": (k, 3), "albedos": (k, 3), "densities": (k,)}
        for name, shape in shapes.items():
            value = torch.as_tensor(getattr(self, name), dtype=torch.float32)
            if tuple(value.shape) != shape:
                raise DiffcoreError(f"blob {name} has shape {tuple(value.shape)}; expected {shape} for {k} blobs")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "radii", torch.as_tensor(self.radii, dtype=torch.float32))

    @classmethod
    def default(cls, **options) -> BlobScene:
        """Four blobs of different sizes and colours, off-centre so that every view differs."""
        return cls(
            centers=[[0.0, 0.0, 0.0], [0.45, -0.2, 0.3], [-0.4, 0.35, 0.1], [0.05, 0.3, -0.4]],
            radii=[0.28, 0.17, 0.2, 0.16],
            albedos=[[0.9, 0.3, -0.6], [-0.7, 0.7, -0.5], [-0.6, -0.2, 0.9], [0.8, 0.8, -0.8]],
            densities=[40.0, 40.0, 40.0, 40.0],
            **options,
        )

    @property
    def bounds(self) -> torch.Tensor:
        return box(self.half_size)

    def _blobs(self, points: torch.Tensor) -> torch.Tensor:
        """Each blob's density at points (P, 3) -> (P, K)."""
        d2 = ((points[:, None, :] - self.centers.to(points)) ** 2).sum(-1)
        return self.densities.to(points) * torch.exp(-d2 / (2 * self.radii.to(points) ** 2))

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self._blobs(points).sum(-1)

    def field(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        blobs = self._blobs(points)  # (P, K)
        density = blobs.sum(-1)
        albedo = (blobs @ self.albedos.to(points)) / density.clamp_min(1e-8)[:, None]
        # shading normal -grad sigma / |grad sigma|, in closed form: grad sigma = -sum_k blob_k (x - m_k) / r_k^2
        offsets = points[:, None, :] - self.centers.to(points)
        grad = -(blobs[..., None] * offsets / self.radii.to(points)[:, None] ** 2).sum(1)
        normal = -grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        light = torch.as_tensor(self.light, dtype=points.dtype, device=points.device)
        shade = self.ambient + (1 - self.ambient) * (normal @ (light / light.norm())).clamp_min(0.0)
        return density, (albedo + 1) * shade[:, None] - 1

    def colors(self, points: torch.Tensor) -> torch.Tensor:
        return self.field(points)[1]

    def parameters(self) -> list[torch.Tensor]:
        return []  # fixed: it satisfies Representation3D so that export and rendering treat it as any scene

    @torch.no_grad()
    def render_outputs(self, camera: Camera) -> Rendering:
        """The scene seen by ``camera`` (exact up to the quadrature of ``samples`` points per ray)."""

        def rays(origins, directions, normals=False):
            return render_rays(self.field, origins, directions, self.bounds, samples=self.samples, background=colour(self.background, 3))

        return render_camera(rays, camera)

    def render(self, camera: Camera) -> torch.Tensor:
        return self.render_outputs(camera).rgb
