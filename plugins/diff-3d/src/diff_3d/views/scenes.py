"""Procedural scenes of coloured primitives (spheres, boxes, cylinders), ray-cast exactly.

The data of ``zoo:views`` and the ground truth of its measurements and of the editing check: a
scene is a few solid primitives around the origin (z up), each with an albedo, shaded by a fixed
light in the world (Lambertian, as :class:`diff_3d.scene.BlobScene`: every view sees the same colour
at a point), in front of a uniform background. Rendering casts one ray per sample and intersects
it with every primitive in closed form (no volume quadrature), ``supersample``\\ :sup:`2` rays per
pixel averaged, so a 32x32 view of a scene costs about a millisecond.

- sphere: centre ``c``, radius ``s[0]``;
- box: centre ``c``, half extents ``s`` along its own axes, turned by ``angle`` about z;
- cylinder: centre ``c``, radius ``s[0]``, half height ``s[2]``, axis z (``angle`` turns nothing).

``render_outputs`` returns a :class:`~diffcore.protocols.Rendering`: ``rgb`` in [-1, 1], ``depth``
(distance along the pixel centre's unit ray to the first hit, 0 on the background),
``accumulation`` (the share of a pixel's rays that hit) and ``normals``.

>>> import torch
>>> import math
>>> from diff_3d.cameras import focal_from_fov, orbit_cameras
>>> ball = PrimitiveScene(kinds=("sphere",), centers=[[0.0, 0.0, 0.0]], sizes=[[0.5, 0.5, 0.5]], angles=[0.0], albedos=[[1.0, -1.0, -1.0]])
>>> view = ball.render_outputs(orbit_cameras(torch.tensor([0.0]), 0.0, 2.5, fov=50.0, size=8))
>>> a = math.atan(0.5 * math.sqrt(2) / float(focal_from_fov(50.0, 8)))  # pixel (4, 4)'s ray, off the axis by half a pixel each way
>>> round(float(view.depth[0, 0, 4, 4]), 4) == round(2.5 * math.cos(a) - math.sqrt(0.5**2 - (2.5 * math.sin(a)) ** 2), 4)
True
>>> bool(view.accumulation[0, 0, 0, 0] == 0), [round(v, 2) for v in view.rgb[0, :, 0, 0].tolist()]
(True, [1.0, 1.0, 1.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from diff_3d.cameras import camera_rays, with_size
from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera, Rendering

KINDS = ("sphere", "box", "cylinder")
LIGHT = (0.3, -0.5, 0.8)
_INF = float("inf")


def _turn(vectors: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate (..., K, 3) vectors about z by ``angle`` (K,) radians."""
    c, s = torch.cos(angle), torch.sin(angle)
    x, y, z = vectors.unbind(-1)
    return torch.stack([c * x - s * y, s * x + c * y, z], dim=-1)


def _sphere(p, d, size):
    """Hits of unit rays ``p + t d`` (R, 3) with a sphere at the origin: distance (R,) and normal (R, 3)."""
    r = size[0]
    b = (p * d).sum(-1)
    disc = b * b - ((p * p).sum(-1) - r * r)
    t = -b - torch.sqrt(disc.clamp_min(0))
    t = torch.where((disc >= 0) & (t > 0), t, torch.full_like(t, _INF))
    normal = (p + t.nan_to_num(posinf=0.0)[:, None] * d) / r
    return t, normal


def _box(p, d, size):
    """Hits with an axis-aligned box of half extents ``size`` at the origin (slab test)."""
    tiny = 1e-9
    safe = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
    t1, t2 = (-size - p) / safe, (size - p) / safe
    lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
    near, axis = lo.max(dim=-1)
    far = hi.min(dim=-1).values
    t = torch.where((far >= near) & (near > 0), near, torch.full_like(near, _INF))
    normal = torch.zeros_like(p)
    sign = -torch.sign(safe.gather(-1, axis[:, None]))
    normal.scatter_(-1, axis[:, None], sign)
    return t, normal


def _cylinder(p, d, size):
    """Hits with a capped cylinder of radius ``size[0]`` and half height ``size[2]`` about the z axis at the origin."""
    r, h = size[0], size[2]
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = p[:, 0] * d[:, 0] + p[:, 1] * d[:, 1]
    c = p[:, 0] ** 2 + p[:, 1] ** 2 - r * r
    disc = b * b - a * c
    side = (-b - torch.sqrt(disc.clamp_min(0))) / a.clamp_min(1e-12)
    z = p[:, 2] + side * d[:, 2]
    side = torch.where((disc >= 0) & (a > 1e-12) & (side > 0) & (z.abs() <= h), side, torch.full_like(side, _INF))
    dz = torch.where(d[:, 2].abs() < 1e-9, torch.full_like(d[:, 2], 1e-9), d[:, 2])
    caps = []
    for level in (h, -h):
        tc = (level - p[:, 2]) / dz
        q = p + tc[:, None] * d
        ok = (tc > 0) & (q[:, 0] ** 2 + q[:, 1] ** 2 <= r * r)
        caps.append(torch.where(ok, tc, torch.full_like(tc, _INF)))
    cap = torch.minimum(*caps)
    t = torch.minimum(side, cap)
    hit = p + t.nan_to_num(posinf=0.0)[:, None] * d
    side_normal = torch.stack([hit[:, 0] / r, hit[:, 1] / r, torch.zeros_like(hit[:, 0])], dim=-1)
    cap_normal = torch.stack([torch.zeros_like(hit[:, 0]), torch.zeros_like(hit[:, 0]), torch.sign(hit[:, 2])], dim=-1)
    normal = torch.where((side <= cap)[:, None], side_normal, cap_normal)
    return t, normal


_HITS = {"sphere": _sphere, "box": _box, "cylinder": _cylinder}


@dataclass(frozen=True, eq=False)
class PrimitiveScene:
    """Solid primitives (see the module docstring): ``kinds`` (K,), ``centers`` and ``sizes`` (K, 3), ``angles`` (K,)
    radians about z, ``albedos`` (K, 3) in [-1, 1]; ``light`` (towards the light), ``ambient``, ``background`` in
    [-1, 1], ``supersample`` rays per pixel side."""

    kinds: tuple[str, ...]
    centers: torch.Tensor
    sizes: torch.Tensor
    angles: torch.Tensor
    albedos: torch.Tensor
    light: tuple[float, float, float] = LIGHT
    ambient: float = 0.55
    background: float = 1.0
    supersample: int = 2

    def __post_init__(self):
        kinds = tuple(self.kinds)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise DiffcoreError(f"a scene needs at least one primitive of {', '.join(KINDS)}; got {list(kinds)}")
        k = len(kinds)
        object.__setattr__(self, "kinds", kinds)
        for name, shape in {"centers": (k, 3), "sizes": (k, 3), "angles": (k,), "albedos": (k, 3)}.items():
            value = torch.as_tensor(getattr(self, name), dtype=torch.float32)
            if tuple(value.shape) != shape:
                raise DiffcoreError(f"primitive {name} has shape {tuple(value.shape)}; expected {shape} for {k} primitives")
            object.__setattr__(self, name, value)
        if not bool((self.sizes > 0).all()):
            raise DiffcoreError("primitive sizes must be positive")
        if int(self.supersample) < 1:
            raise DiffcoreError(f"supersample must be a positive integer, got {self.supersample}")

    def __len__(self) -> int:
        return len(self.kinds)

    def cast(self, origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """First hits of rays (R, 3) (unit directions): distance (R,) (inf on a miss), world normal (R, 3), albedo (R, 3)."""
        best = torch.full(origins.shape[:1], _INF, dtype=origins.dtype, device=origins.device)
        normal = torch.zeros_like(origins)
        albedo = torch.zeros_like(origins)
        for i, kind in enumerate(self.kinds):
            angle = self.angles[i].to(origins)
            p = _turn(origins - self.centers[i].to(origins), -angle)
            d = _turn(directions, -angle)
            t, n = _HITS[kind](p, d, self.sizes[i].to(origins))
            closer = t < best
            best = torch.where(closer, t, best)
            normal = torch.where(closer[:, None], _turn(n, angle), normal)
            albedo = torch.where(closer[:, None], self.albedos[i].to(origins).expand_as(albedo), albedo)
        return best, normal, albedo

    def shade(self, hit: torch.Tensor, normal: torch.Tensor, albedo: torch.Tensor) -> torch.Tensor:
        """Colours (R, 3) in [-1, 1]: Lambertian under the fixed light where ``hit``, the background elsewhere."""
        light = torch.as_tensor(self.light, dtype=normal.dtype, device=normal.device)
        shade = self.ambient + (1 - self.ambient) * (normal @ (light / light.norm())).clamp_min(0.0)
        colour = (albedo + 1) * shade[:, None] - 1
        return torch.where(hit[:, None], colour, torch.full_like(colour, float(self.background)))

    @torch.no_grad()
    def render_outputs(self, camera: Camera) -> Rendering:
        """The scene seen by ``camera`` (see the module docstring)."""
        n, h, w, ss = len(camera), camera.height, camera.width, int(self.supersample)
        fine = with_size(camera, w * ss, h * ss)
        origins, directions = camera_rays(fine)
        t, normal, albedo = self.cast(origins.reshape(-1, 3), directions.reshape(-1, 3))
        hit = torch.isfinite(t)
        rgb = self.shade(hit, normal, albedo)

        def pooled(values: torch.Tensor) -> torch.Tensor:
            image = values.reshape(n, h * ss, w * ss, -1).permute(0, 3, 1, 2)
            return F.avg_pool2d(image, ss) if ss > 1 else image

        centre_o, centre_d = camera_rays(camera)
        depth = self.cast(centre_o.reshape(-1, 3), centre_d.reshape(-1, 3))[0]
        depth = torch.where(torch.isfinite(depth), depth, torch.zeros_like(depth)).reshape(n, 1, h, w)
        return Rendering(rgb=pooled(rgb), depth=depth, accumulation=pooled(hit.float()[:, None]), normals=pooled(normal * hit[:, None]))

    def render(self, camera: Camera) -> torch.Tensor:
        return self.render_outputs(camera).rgb

    def parameters(self) -> list[torch.Tensor]:
        return []  # fixed content: a stand-in for a representation where a renderer is asked for


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    k = (torch.tensor([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def random_scene(generator: torch.Generator, *, most: int = 3, background: float = 1.0, supersample: int = 2) -> PrimitiveScene:
    """A scene of 1 to ``most`` primitives drawn from ``generator`` (fixed draws per primitive, so a seed fixes a scene).

    Kinds uniform; centres in ``[-0.35, 0.35]^2 x [-0.25, 0.25]``; sphere radii 0.25-0.45, box half
    extents 0.2-0.4 turned by a uniform angle, cylinder radii 0.2-0.35 and half heights 0.25-0.45;
    saturated colours (hue uniform, saturation 0.6-1, value 0.7-1).
    """
    count = int(torch.randint(1, most + 1, (1,), generator=generator))
    u = torch.rand(count, 11, generator=generator, dtype=torch.float64).float()
    kinds = tuple(KINDS[int(k)] for k in (u[:, 0] * len(KINDS)).floor().clamp(max=len(KINDS) - 1))
    centers = torch.stack([(u[:, 1] - 0.5) * 0.7, (u[:, 2] - 0.5) * 0.7, (u[:, 3] - 0.5) * 0.5], dim=-1)
    sizes, angles = [], []
    for i, kind in enumerate(kinds):
        if kind == "sphere":
            r = 0.25 + 0.2 * u[i, 4]
            sizes.append(torch.stack([r, r, r]))
        elif kind == "box":
            sizes.append(0.2 + 0.2 * u[i, 4:7])
        else:
            r = 0.2 + 0.15 * u[i, 4]
            sizes.append(torch.stack([r, r, 0.25 + 0.2 * u[i, 5]]))
        angles.append(u[i, 7] * math.pi if kind == "box" else torch.tensor(0.0))
    rgb = _hsv_to_rgb(u[:, 8], 0.6 + 0.4 * u[:, 9], 0.7 + 0.3 * u[:, 10])
    return PrimitiveScene(
        kinds=kinds,
        centers=centers,
        sizes=torch.stack(sizes),
        angles=torch.stack(angles),
        albedos=rgb * 2 - 1,
        background=background,
        supersample=supersample,
    )
