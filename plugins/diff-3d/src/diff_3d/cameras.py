"""Cameras in the project's convention (:class:`diffcore.protocols.Camera`, nerfstudio's): orbits, rays, random views.

World: z up, content around the origin. A camera's ``camera_to_worlds`` (N, 3, 4) holds the
camera's axes (x right, y up, z backwards: it looks along -z, OpenGL's convention) and its
position; ``fx``, ``fy``, ``cx``, ``cy`` are in pixels. An orbit camera at azimuth ``a`` and
elevation ``e`` sits at ``r (sin a cos e, -cos a cos e, sin e)`` and looks at the origin: azimuth 0 is
the front (on -y), as the central angle of nerfstudio's random cameras, and elevation is 90 degrees
minus nerfstudio's vertical angle.

>>> import torch
>>> cam = orbit_cameras(torch.tensor([0.0]), torch.tensor([0.0]), 2.0, fov=60.0, size=4)
>>> origins, directions = camera_rays(cam)
>>> [round(v, 4) for v in origins[0, 0, 0].tolist()], origins.shape
([0.0, -2.0, 0.0], torch.Size([1, 4, 4, 3]))
>>> centre = directions[0, 1:3, 1:3].mean(dim=(0, 1))  # the four middle pixels look at the origin
>>> [round(v, 4) for v in (centre / centre.norm()).tolist()]
[0.0, 1.0, 0.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera

UP = (0.0, 0.0, 1.0)


def look_at(positions: torch.Tensor, target=(0.0, 0.0, 0.0), up=UP) -> torch.Tensor:
    """Camera-to-world matrices (N, 3, 4) of cameras at ``positions`` (N, 3) looking at ``target``, z up.

    A camera straight above or below the target (looking along ``up``) takes +y as its up instead.
    """
    positions = torch.as_tensor(positions, dtype=torch.float32)
    target = torch.as_tensor(target, dtype=positions.dtype, device=positions.device)
    forward = target - positions
    norm = forward.norm(dim=-1, keepdim=True)
    if bool((norm < 1e-9).any()):
        raise DiffcoreError("a camera cannot look at the point it stands on; move it away from the target")
    forward = forward / norm
    up = torch.as_tensor(up, dtype=positions.dtype, device=positions.device).expand_as(forward)
    right = torch.linalg.cross(forward, up)
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    alternative = torch.linalg.cross(
        forward, torch.tensor([0.0, 1.0, 0.0], dtype=positions.dtype, device=positions.device).expand_as(forward)
    )
    right = torch.where(degenerate, alternative, right)
    right = right / right.norm(dim=-1, keepdim=True)
    true_up = torch.linalg.cross(right, forward)
    rotation = torch.stack([right, true_up, -forward], dim=-1)  # columns: the camera's x, y, z axes in the world
    return torch.cat([rotation, positions[..., None]], dim=-1)


def focal_from_fov(fov: float | torch.Tensor, size: int) -> torch.Tensor:
    """The focal length in pixels of a square image of ``size`` pixels with field of view ``fov`` degrees."""
    fov = torch.as_tensor(fov, dtype=torch.float32)
    return 0.5 * size / torch.tan(torch.deg2rad(fov) / 2)


def orbit_positions(azimuth: torch.Tensor, elevation: torch.Tensor, radius) -> torch.Tensor:
    """Positions (N, 3) on spheres of ``radius`` at ``azimuth`` and ``elevation`` (degrees)."""
    a, e = torch.deg2rad(torch.as_tensor(azimuth, dtype=torch.float32)), torch.deg2rad(torch.as_tensor(elevation, dtype=torch.float32))
    r = torch.as_tensor(radius, dtype=torch.float32)
    return torch.stack([r * torch.sin(a) * torch.cos(e), -r * torch.cos(a) * torch.cos(e), r * torch.sin(e) * torch.ones_like(a)], dim=-1)


def orbit_cameras(azimuth, elevation, radius, *, fov: float | torch.Tensor = 50.0, size: int = 32, target=(0.0, 0.0, 0.0)) -> Camera:
    """Square pinhole cameras of ``size`` pixels on an orbit around ``target``, looking at it.

    ``azimuth`` and ``elevation`` are (N,) degrees; ``radius`` and ``fov`` (degrees, full angle) a
    number or (N,). The principal point is the image centre.
    """
    azimuth = torch.as_tensor(azimuth, dtype=torch.float32).reshape(-1)
    elevation = torch.as_tensor(elevation, dtype=torch.float32).reshape(-1).expand_as(azimuth)
    target = torch.as_tensor(target, dtype=torch.float32)
    c2w = look_at(orbit_positions(azimuth, elevation, radius) + target, target)
    focal = focal_from_fov(fov, size).reshape(-1, 1).expand(len(azimuth), 1)
    half = torch.full((len(azimuth), 1), size / 2)
    return Camera(c2w, focal, focal, half, half, size, size)


def camera_rays(camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and unit directions (N, H, W, 3) of the rays through every pixel centre, in world coordinates."""
    c2w = camera.camera_to_worlds
    v, u = torch.meshgrid(
        torch.arange(camera.height, dtype=c2w.dtype, device=c2w.device) + 0.5,
        torch.arange(camera.width, dtype=c2w.dtype, device=c2w.device) + 0.5,
        indexing="ij",
    )
    fx, fy, cx, cy = (value[:, :, None] for value in (camera.fx, camera.fy, camera.cx, camera.cy))
    x, y = (u - cx) / fx, -(v - cy) / fy  # (N, H, W)
    local = torch.stack([x, y, -torch.ones_like(x)], dim=-1)
    directions = torch.einsum("nij,nhwj->nhwi", c2w[:, :, :3], local)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = c2w[:, None, None, :, 3].expand_as(directions)
    return origins, directions


def with_size(camera: Camera, width: int, height: int | None = None) -> Camera:
    """The same cameras seeing the same field of view at another image size (intrinsics scaled)."""
    height = width if height is None else height
    sx, sy = width / camera.width, height / camera.height
    return Camera(camera.camera_to_worlds, camera.fx * sx, camera.fy * sy, camera.cx * sx, camera.cy * sy, width, height)


def to_device(camera: Camera, device) -> Camera:
    """The same cameras with their tensors on ``device``."""
    c = camera
    return Camera(c.camera_to_worlds.to(device), c.fx.to(device), c.fy.to(device), c.cx.to(device), c.cy.to(device), c.width, c.height)


def index(camera: Camera, i) -> Camera:
    """The cameras ``i`` (an int, slice or index tensor) of a batch, as a batch."""
    if isinstance(i, int):
        i = slice(i, i + 1)
    return Camera(camera.camera_to_worlds[i], camera.fx[i], camera.fy[i], camera.cx[i], camera.cy[i], camera.width, camera.height)


@dataclass(frozen=True)
class CameraSampler:
    """Random orbit cameras around the origin, drawn from an explicit generator (DreamFusion, sec. 3.1).

    Azimuth uniform in ``azimuth`` (degrees), elevation with uniform density on the sphere between
    the ``elevation`` bounds, radius uniform in ``radius``, field of view uniform in ``fov``;
    square images of ``size`` pixels. ``turntable`` and ``held_out`` give fixed views.
    """

    size: int = 32
    radius: tuple[float, float] = (2.2, 2.8)
    elevation: tuple[float, float] = (-10.0, 45.0)
    azimuth: tuple[float, float] = (-180.0, 180.0)
    fov: tuple[float, float] = (45.0, 55.0)

    def __post_init__(self):
        for name in ("radius", "elevation", "azimuth", "fov"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise DiffcoreError(f"camera {name} range must be (low, high) with low <= high, got ({lo}, {hi})")
            object.__setattr__(self, name, (float(lo), float(hi)))
        if self.radius[0] <= 0 or not (0 < self.fov[0] and self.fov[1] < 180):
            raise DiffcoreError(f"camera radius must be positive and fov in (0, 180) degrees, got radius {self.radius} and fov {self.fov}")
        if not -90 <= self.elevation[0] <= self.elevation[1] <= 90:
            raise DiffcoreError(f"camera elevation must lie in [-90, 90] degrees, got {self.elevation}")
        if int(self.size) < 1:
            raise DiffcoreError(f"camera image size must be positive, got {self.size}")

    def sample(self, n: int, generator: torch.Generator) -> Camera:
        """``n`` random cameras; four uniform draws per camera from ``generator``, in a fixed order."""
        u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
        azimuth = self.azimuth[0] + u[:, 0] * (self.azimuth[1] - self.azimuth[0])
        sin_lo, sin_hi = (math.sin(math.radians(e)) for e in self.elevation)
        elevation = torch.rad2deg(torch.asin(sin_lo + u[:, 1] * (sin_hi - sin_lo)))  # uniform area on the sphere
        radius = self.radius[0] + u[:, 2] * (self.radius[1] - self.radius[0])
        fov = self.fov[0] + u[:, 3] * (self.fov[1] - self.fov[0])
        return orbit_cameras(azimuth.float(), elevation.float(), radius.float(), fov=fov.float(), size=self.size)

    @property
    def middle(self) -> tuple[float, float, float]:
        """The middle radius, elevation and field of view."""
        return (sum(self.radius) / 2, sum(self.elevation) / 2, sum(self.fov) / 2)

    def turntable(self, frames: int = 36, elevation: float | None = None, size: int | None = None) -> Camera:
        """``frames`` cameras at one elevation (default the middle one) all around the object, or sweeping the
        azimuth range there and back when the sampler sees only part of the circle."""
        radius, middle_elevation, fov = self.middle
        lo, hi = self.azimuth
        if hi - lo >= 360:
            azimuth = lo + torch.arange(frames, dtype=torch.float32) * (360.0 / frames)
        else:
            phase = torch.arange(frames, dtype=torch.float32) * (2 * math.pi / frames)
            azimuth = (lo + hi) / 2 - (hi - lo) / 2 * torch.cos(phase)
        return orbit_cameras(azimuth, middle_elevation if elevation is None else elevation, radius, fov=fov, size=size or self.size)

    def held_out(self, n: int = 8) -> Camera:
        """``n`` fixed views inside the sampled ranges that training never draws exactly (azimuths offset by half a step)."""
        radius, middle_elevation, fov = self.middle
        span = self.azimuth[1] - self.azimuth[0]
        azimuth = self.azimuth[0] + (torch.arange(n, dtype=torch.float32) + 0.5) * span / n
        lo, hi = self.elevation
        elevation = torch.where(torch.arange(n) % 2 == 0, torch.tensor(lo + 0.25 * (hi - lo)), torch.tensor(lo + 0.75 * (hi - lo)))
        return orbit_cameras(azimuth, elevation, radius, fov=fov, size=self.size)
