"""Volume rendering of a density and colour field along camera rays (Max 1995; Mildenhall et al. 2020, eq. 3).

A ray ``o + s d`` (unit ``d``) crosses the content's box between ``near`` and ``far``; ``samples``
points at the midpoints of equal intervals of length ``delta`` give densities ``sigma_i`` and
colours ``c_i``. With ``alpha_i = 1 - exp(-sigma_i delta)`` and transmittance
``T_i = prod_{j<i} (1 - alpha_j)``, the weights are ``w_i = T_i alpha_i`` and

- colour ``sum_i w_i c_i + (1 - sum_i w_i) background``;
- accumulation (opacity) ``sum_i w_i``; depth ``sum_i w_i s_i / sum_i w_i`` (0 where nothing is hit);
- normals ``sum_i w_i n_i`` with ``n_i = -grad sigma / |grad sigma|`` (asked for: one more backward pass).

Colours and the background are in [-1, 1]. A ray that misses the box sees the background.

>>> import torch
>>> def grey_ball(points):  # density 50 inside the unit ball, colour 0.5
...     inside = (points.norm(dim=-1) < 1).float()
...     return 50 * inside, torch.full((len(points), 3), 0.5)
>>> o, d = torch.tensor([[0.0, -3.0, 0.0], [0.0, -3.0, 2.0]]), torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
>>> out = render_rays(grey_ball, o, d, torch.tensor([[-1.5] * 3, [1.5] * 3]), samples=64, background=torch.full((3,), -1.0))
>>> [round(v, 3) for v in out["rgb"][:, 0].tolist()], [round(v, 2) for v in out["accumulation"][:, 0].tolist()]
([0.5, -1.0], [1.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diff_3d.cameras import camera_rays
from diffcore.protocols import Camera, Rendering

Field = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def ray_box(origins: torch.Tensor, directions: torch.Tensor, bounds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where rays (R, 3) enter and leave the box ``bounds`` (2, 3): ``near``, ``far`` (R,), ``near >= 0``; ``far == near`` on a miss."""
    tiny = torch.finfo(directions.dtype).tiny ** 0.5
    safe = torch.where(directions.abs() < tiny, torch.full_like(directions, tiny), directions)
    t0, t1 = (bounds[0] - origins) / safe, (bounds[1] - origins) / safe
    near = torch.minimum(t0, t1).amax(dim=-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    return near, torch.maximum(far, near)


def composite(density: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Weights ``T_i alpha_i`` (R, S) from densities (R, S) and interval lengths (R, S) or (R, 1)."""
    alpha = 1.0 - torch.exp(-density * delta)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], dim=1), dim=1)[:, :-1]
    return alpha * transmittance


def field_normals(field: Field, points: torch.Tensor) -> torch.Tensor:
    """Unit normals ``-grad sigma / |grad sigma|`` (P, 3) of a field's density at ``points`` (no graph kept)."""
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        density, _ = field(x)
        (grad,) = torch.autograd.grad(density.sum(), x)
    return -grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def render_rays(
    field: Field,
    origins: torch.Tensor,
    directions: torch.Tensor,
    bounds: torch.Tensor,
    *,
    samples: int,
    background: torch.Tensor,
    normals: bool = False,
) -> dict[str, torch.Tensor]:
    """Render rays (R, 3) through ``field(points) -> (density (P,), colour (P, C))``; see the module docstring.

    Returns ``rgb`` (R, C), ``accumulation`` and ``depth`` (R, 1), ``weights`` (R, S) and, when asked,
    ``normals`` (R, 3).
    """
    bounds = bounds.to(origins)
    near, far = ray_box(origins, directions, bounds)
    steps = (torch.arange(samples, dtype=origins.dtype, device=origins.device) + 0.5) / samples
    span = (far - near)[:, None]
    s = near[:, None] + span * steps  # (R, S)
    points = origins[:, None, :] + s[..., None] * directions[:, None, :]
    density, color = field(points.reshape(-1, 3))
    density = density.reshape(s.shape)
    color = color.reshape(*s.shape, -1)
    weights = composite(density, span / samples)
    accumulation = weights.sum(dim=1, keepdim=True)
    rgb = (weights[..., None] * color).sum(dim=1) + (1.0 - accumulation) * background.to(color)
    depth = (weights * s).sum(dim=1, keepdim=True) / accumulation.clamp_min(1e-6)
    out = {"rgb": rgb, "accumulation": accumulation, "depth": depth, "weights": weights}
    if normals:
        n = field_normals(field, points.reshape(-1, 3)).reshape(*s.shape, 3)
        out["normals"] = (weights.detach()[..., None] * n).sum(dim=1)
    return out


def images(outputs: dict[str, torch.Tensor], camera: Camera) -> Rendering:
    """Per-ray outputs of all of a camera batch's pixels (N H W rays, in :func:`camera_rays` order) as a :class:`Rendering`."""
    n, h, w = len(camera), camera.height, camera.width

    def image(key):
        value = outputs.get(key)
        return None if value is None else value.reshape(n, h, w, -1).permute(0, 3, 1, 2)

    return Rendering(rgb=image("rgb"), depth=image("depth"), accumulation=image("accumulation"), normals=image("normals"))


def render_camera(render: Callable[..., dict[str, torch.Tensor]], camera: Camera, *, normals: bool = False) -> Rendering:
    """Render every pixel of ``camera`` with ``render(origins, directions, normals=...)`` (rays (R, 3) -> outputs)."""
    origins, directions = camera_rays(camera)
    return images(render(origins.reshape(-1, 3), directions.reshape(-1, 3), normals=normals), camera)
