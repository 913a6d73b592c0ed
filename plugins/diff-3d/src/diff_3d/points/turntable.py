"""Pictures of point clouds: each point splatted as a small square by a perspective camera, nearest point wins, shaded by depth.

A view looks at the origin from ``distance`` at ``elevation`` degrees above the xy-plane and
``azimuth`` degrees about z (z up, as the rest of diff-3d). The pixel a point falls in, and its
``splat``-wide neighbours, take the point's depth when it is the nearest there (a z-buffer by
``scatter_reduce``, Catmull 1974); depth maps to a colour from near (dark blue) to far (light),
known points of a completion in orange. :func:`turntable` turns the camera all around; the
frames (F, 3, H, W) in [-1, 1] become a GIF through :func:`diffcore.tour.encode_gif`.

>>> import torch
>>> x = torch.tensor([[0.0, 0.0, 0.0]])
>>> image = render_points(x, size=9, splat=1)
>>> bool((image[:, 4, 4] < 0.9).all()), bool((image[:, 0, 0] == 1).all())  # the point at the centre, white elsewhere
(True, True)
"""

from __future__ import annotations

import math

import torch

from diffcore.errors import ShapeError

NEAR, FAR, KNOWN = (0.10, 0.25, 0.60), (0.55, 0.75, 0.95), (0.95, 0.55, 0.10)


def view_matrix(azimuth: float, elevation: float) -> torch.Tensor:
    """The rotation (3, 3) whose rows are the camera's right, up and forward axes in world coordinates."""
    a, e = math.radians(azimuth), math.radians(elevation)
    forward = -torch.tensor([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])  # from the camera to the origin
    right = torch.linalg.cross(forward, torch.tensor([0.0, 0.0, 1.0]))
    right = right / right.norm()
    up = torch.linalg.cross(right, forward)
    return torch.stack([right, up, forward])


def render_points(
    points,
    *,
    size: int = 96,
    azimuth: float = 30.0,
    elevation: float = 20.0,
    distance: float = 4.0,
    fov: float = 40.0,
    splat: int = 2,
    known: int = 0,
) -> torch.Tensor:
    """An image (3, size, size) in [-1, 1] of ``points`` (P, 3); the first ``known`` points drawn in orange."""
    p = torch.as_tensor(points).detach().float().cpu()
    if p.ndim != 2 or p.shape[1] != 3:
        raise ShapeError(f"points have shape {tuple(p.shape)}; expected (P, 3)")
    camera = p @ view_matrix(azimuth, elevation).T  # (P, 3): right, up, forward
    depth = camera[:, 2] + distance
    focal = 0.5 * size / math.tan(math.radians(fov) / 2)
    u = (focal * camera[:, 0] / depth + size / 2).floor().long()
    v = (size / 2 - focal * camera[:, 1] / depth).floor().long()
    colour = torch.lerp(torch.tensor(NEAR), torch.tensor(FAR), ((depth - (distance - 1.5)) / 3.0).clamp(0, 1)[:, None])
    colour[: int(known)] = torch.tensor(KNOWN)
    best = torch.full((size * size,), math.inf)
    offsets = [(du, dv) for du in range(splat) for dv in range(splat)]
    for du, dv in offsets:
        uu, vv = u + du, v + dv
        inside = (uu >= 0) & (uu < size) & (vv >= 0) & (vv < size) & (depth > 0)
        best.scatter_reduce_(0, (vv * size + uu)[inside], depth[inside], reduce="amin")
    image = torch.ones(size * size, 3)
    for du, dv in offsets:
        uu, vv = u + du, v + dv
        inside = (uu >= 0) & (uu < size) & (vv >= 0) & (vv < size) & (depth > 0)
        flat = (vv * size + uu)[inside]
        nearest = depth[inside] == best[flat]
        image[flat[nearest]] = colour[inside][nearest]
    return (image.reshape(size, size, 3).permute(2, 0, 1) * 2 - 1).contiguous()


def turntable(points, *, frames: int = 24, size: int = 96, elevation: float = 20.0, known: int = 0, **options) -> torch.Tensor:
    """``frames`` views (F, 3, size, size) in [-1, 1] of ``points`` (P, 3), the camera turning once about z."""
    return torch.stack(
        [render_points(points, size=size, azimuth=360.0 * i / frames, elevation=elevation, known=known, **options) for i in range(frames)]
    )


__all__ = ["render_points", "turntable", "view_matrix"]
