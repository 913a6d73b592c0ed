"""Procedural shapes for point-cloud diffusion: spheres, boxes, tori, cylinders and cones, as surface samples.

Each shape is ``P`` points drawn uniformly (by area) on the surface of a primitive with random
dimensions, centred on the origin, z up, rotated about z by a random angle, inside the cube
``[-1, 1]^3`` (the data range of ``zoo:shapes``). Uniform by area, as the ShapeNet point clouds of
PointFlow, PVD and LION are sampled from meshes (Yang et al. 2019, sec. 6): faces, caps and the
lateral surfaces are chosen in proportion to their areas, and curved surfaces whose area element
varies (the torus) are sampled by rejection.

Dimensions (before the rotation): sphere radius 0.5-1; box half-sides 0.3-0.7; torus major radius
0.5-0.75 and tube radius 0.12-0.3 (axis z); cylinder radius 0.3-0.8 and half-height 0.3-1; cone base
radius 0.4-1 and height 0.8-2 (apex up, centred on its height). Every draw comes from the generator
passed in, in a fixed order, so a seed gives the same shapes.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> x = shape("sphere", 256, g)
>>> x.shape, bool(torch.allclose(x.norm(dim=1), x.norm(dim=1)[0].expand(256), atol=1e-5))
(torch.Size([256, 3]), True)
>>> batch, labels = shapes(4, 128, torch.Generator().manual_seed(1))
>>> batch.shape, bool(batch.abs().max() <= 1)
(torch.Size([4, 128, 3]), True)
"""

from __future__ import annotations

import math

import torch

from diffcore.errors import DiffcoreError

#: The classes, in label order.
SHAPES = ("sphere", "box", "torus", "cylinder", "cone")


def _uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _pick(areas: list[float], n: int, generator: torch.Generator) -> torch.Tensor:
    """Which of the parts (by area) each of ``n`` points lies on."""
    return torch.multinomial(torch.tensor(areas, dtype=torch.float64), n, replacement=True, generator=generator)


def sphere_surface(n: int, radius: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` points uniform on the sphere of ``radius`` (normalised Gaussians; Muller 1959)."""
    v = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    return radius * v / v.norm(dim=1, keepdim=True)


def box_surface(n: int, half: tuple[float, float, float], generator: torch.Generator) -> torch.Tensor:
    """``n`` points uniform on the surface of the box ``[-a, a] x [-b, b] x [-c, c]``."""
    a, b, c = half
    areas = [b * c, b * c, a * c, a * c, a * b, a * b]  # faces at -x, +x, -y, +y, -z, +z
    face = _pick(areas, n, generator)
    u = 2 * torch.rand(n, 3, generator=generator, dtype=torch.float64) - 1
    p = u * torch.tensor(half, dtype=torch.float64)
    axis, sign = face // 2, (face % 2) * 2 - 1
    p[torch.arange(n), axis] = sign.double() * torch.tensor(half, dtype=torch.float64)[axis]
    return p


def torus_surface(n: int, major: float, minor: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` points uniform on the torus of radii ``major`` > ``minor`` about z: the tube angle by rejection.

    The area element is ``minor (major + minor cos v) du dv``, so a uniform tube angle ``v`` is kept
    with probability ``(major + minor cos v) / (major + minor)``.
    """
    kept: list[torch.Tensor] = []
    count = 0
    while count < n:
        v = 2 * math.pi * torch.rand(2 * n, generator=generator, dtype=torch.float64)
        accept = torch.rand(2 * n, generator=generator, dtype=torch.float64) * (major + minor) < major + minor * torch.cos(v)
        kept.append(v[accept])
        count += int(accept.sum())
    v = torch.cat(kept)[:n]
    u = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    ring = major + minor * torch.cos(v)
    return torch.stack([ring * torch.cos(u), ring * torch.sin(u), minor * torch.sin(v)], dim=1)


def cylinder_surface(n: int, radius: float, half_height: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` points uniform on a closed cylinder about z (side and both caps)."""
    areas = [2 * math.pi * radius * 2 * half_height, math.pi * radius**2, math.pi * radius**2]
    part = _pick(areas, n, generator)
    angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    r = torch.where(part == 0, torch.full_like(u, radius), radius * torch.sqrt(u))  # a disc's radius: sqrt for uniform area
    cap = torch.where(part == 1, torch.full_like(u, -half_height), torch.full_like(u, half_height))
    z = torch.where(part == 0, (2 * u - 1) * half_height, cap)
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle), z], dim=1)


def cone_surface(n: int, radius: float, height: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` points uniform on a closed cone about z, apex up, centred on its height (lateral surface and base)."""
    slant = math.hypot(radius, height)
    part = _pick([math.pi * radius * slant, math.pi * radius**2], n, generator)
    angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    f = torch.sqrt(torch.rand(n, generator=generator, dtype=torch.float64))  # distance from the apex (side) or centre (base), as a share
    r = radius * f
    z = torch.where(part == 0, height * (1 - f), torch.zeros_like(f)) - height / 2
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle), z], dim=1)


def shape(kind: str | int, points: int, generator: torch.Generator) -> torch.Tensor:
    """One shape of class ``kind`` (a name of :data:`SHAPES` or its index): ``points`` surface points (P, 3), float32."""
    if isinstance(kind, int) or (isinstance(kind, str) and kind.isdigit()):
        index = int(kind)
        if not 0 <= index < len(SHAPES):
            raise DiffcoreError(f"shape index {index} is out of range: there are {len(SHAPES)} shapes (0-{len(SHAPES) - 1})")
        kind = SHAPES[index]
    if kind not in SHAPES:
        raise DiffcoreError(f"unknown shape {kind!r}; expected one of {', '.join(SHAPES)}")
    if int(points) < 1:
        raise DiffcoreError(f"a shape needs at least one point, got {points}")
    g, n = generator, int(points)
    if kind == "sphere":
        p = sphere_surface(n, _uniform(g, 0.5, 1.0), g)
    elif kind == "box":
        p = box_surface(n, (_uniform(g, 0.3, 0.7), _uniform(g, 0.3, 0.7), _uniform(g, 0.3, 0.7)), g)
    elif kind == "torus":
        p = torus_surface(n, _uniform(g, 0.5, 0.75), _uniform(g, 0.12, 0.3), g)
    elif kind == "cylinder":
        p = cylinder_surface(n, _uniform(g, 0.3, 0.8), _uniform(g, 0.3, 1.0), g)
    else:
        p = cone_surface(n, _uniform(g, 0.4, 1.0), _uniform(g, 0.8, 2.0), g)
    turn = _uniform(g, 0.0, 2 * math.pi)
    c, s = math.cos(turn), math.sin(turn)
    rotation = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return (p @ rotation.T).float()


def shapes(n: int, points: int, generator: torch.Generator, kinds: tuple[str, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` shapes (n, P, 3) of classes drawn uniformly from ``kinds`` (default all), and their labels (n,) in :data:`SHAPES` order."""
    kinds = SHAPES if kinds is None else tuple(kinds)
    unknown = [k for k in kinds if k not in SHAPES]
    if unknown or not kinds:
        raise DiffcoreError(f"unknown shape {unknown[0] if unknown else '(none)'!r}; expected one of {', '.join(SHAPES)}")
    choice = torch.randint(len(kinds), (int(n),), generator=generator)
    labels = torch.tensor([SHAPES.index(kinds[int(i)]) for i in choice], dtype=torch.long)
    return torch.stack([shape(SHAPES[int(label)], points, generator) for label in labels]), labels


def label_index(label: str | int) -> int:
    """A label by name or index, checked."""
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if label not in SHAPES:
            raise DiffcoreError(f"unknown shape {label!r}; the labels are {', '.join(SHAPES)}")
        return SHAPES.index(label)
    index = int(label)
    if not 0 <= index < len(SHAPES):
        raise DiffcoreError(f"label {index} is out of range: the shapes are 0-{len(SHAPES) - 1} ({', '.join(SHAPES)})")
    return index
