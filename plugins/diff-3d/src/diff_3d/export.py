"""Looking at a distilled representation: meshes by marching cubes, point clouds, turntable GIFs.

Works for any :class:`~diffcore.protocols.Representation3D` (diff-3d's voxel grid, triplane and
nerfacto field, or another plugin's), whichever way it was trained: nerfstudio's own ``ns-export``
needs the training images' cameras and fails for methods that see random cameras only.

- :func:`mesh`: the density on a ``resolution^3`` grid over the representation's box, the
  iso-surface at ``threshold`` (default: half the largest density) by marching cubes (Lorensen & Cline 1987; scikit-image's
  implementation), vertex colours from ``colors``; written with trimesh as ``.ply``, ``.obj`` or ``.glb``;
- :func:`point_cloud`: every pixel of a ring of views whose accumulation passes ``opacity``, lifted
  to ``origin + depth * direction`` with its rendered colour (``.ply``);
- :func:`turntable_frames` and :func:`gif_bytes`: views all around the object, as a looping GIF.

>>> import math
>>> from diff_3d.scene import BlobScene
>>> scene = BlobScene(centers=[[0.0, 0.0, 0.0]], radii=[0.3], albedos=[[0.5, 0.5, 0.5]], densities=[40.0])
>>> m = mesh(scene, resolution=48, threshold=10.0)  # the iso-surface of one blob is a sphere
>>> radius = 0.3 * (2 * math.log(40.0 / 10.0)) ** 0.5
>>> abs(float(np.linalg.norm(m.vertices, axis=1).mean()) - radius) < 0.01
True
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from diff_3d.cameras import camera_rays, index, to_device
from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera, Representation3D

MESH_FORMATS = (".ply", ".obj", ".glb")


def _check(representation) -> None:
    if not isinstance(representation, Representation3D):
        raise DiffcoreError(
            f"{type(representation).__name__} is not a 3-D representation (it needs density, colors, bounds and render_outputs): nothing "
            "to export"
        )


@torch.no_grad()
def density_grid(representation, resolution: int = 128, chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The density on a ``resolution^3`` grid of points spanning the box (float32, CPU), and the box."""
    _check(representation)
    if int(resolution) < 2:
        raise DiffcoreError(f"the mesh resolution must be at least 2, got {resolution}")
    bounds = representation.bounds.detach().float().cpu()
    axes = [torch.linspace(float(bounds[0, i]), float(bounds[1, i]), resolution) for i in range(3)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    device = representation.bounds.device
    values = torch.cat([representation.density(points[i : i + chunk].to(device)).float().cpu() for i in range(0, len(points), chunk)])
    return values.reshape(resolution, resolution, resolution), bounds


@torch.no_grad()
def mesh(representation, *, resolution: int = 128, threshold: float | None = None, chunk: int = 1 << 16):
    """A trimesh ``Trimesh`` of the iso-surface ``density = threshold`` with vertex colours (see the module docstring).

    ``threshold`` None takes half the largest density on the grid: a distilled field's densities
    depend on the representation and the run (a voxel grid's reach a few units, a hash grid's hundreds).
    The level used is ``mesh.metadata["threshold"]``.
    """
    import trimesh
    from skimage.measure import marching_cubes

    grid, bounds = density_grid(representation, resolution, chunk)
    top = float(grid.max())
    threshold = 0.5 * top if threshold is None else float(threshold)
    if not top > threshold or not float(grid.min()) < threshold:
        raise DiffcoreError(
            f"empty mesh: the density never crosses the threshold {threshold:g} (it lies between {float(grid.min()):.3g} and {top:.3g}); "
            "choose --threshold inside that range"
        )
    vertices, faces, normals, _ = marching_cubes(
        grid.numpy(), level=threshold, gradient_direction="ascent"
    )  # outward winding for (x, y, z) axes
    scale = (bounds[1] - bounds[0]).numpy() / (resolution - 1)
    vertices = bounds[0].numpy() + vertices * scale
    points = torch.as_tensor(vertices, dtype=torch.float32)
    device = representation.bounds.device
    colors = torch.cat([representation.colors(points[i : i + chunk].to(device)).float().cpu() for i in range(0, len(points), chunk)])
    rgba = np.concatenate([_bytes(colors), np.full((len(colors), 1), 255, np.uint8)], axis=1)
    surface = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_normals=normals, vertex_colors=rgba, process=False)
    surface.metadata["threshold"] = threshold
    return surface


def _bytes(colors: torch.Tensor) -> np.ndarray:
    """Colours in [-1, 1] (P, C) -> (P, 3) uint8 (grey repeated for one channel)."""
    c = colors[:, :3] if colors.shape[1] >= 3 else colors[:, :1].expand(-1, 3)
    return ((c.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


@torch.no_grad()
def point_cloud(representation, cameras: Camera, *, opacity: float = 0.5):
    """A trimesh ``PointCloud`` of the rendered surfaces seen by ``cameras`` (see the module docstring)."""
    import trimesh

    _check(representation)
    cameras = to_device(cameras, representation.bounds.device)
    out = representation.render_outputs(cameras)
    if out.depth is None or out.accumulation is None:
        raise DiffcoreError(f"{type(representation).__name__} renders no depth: no point cloud")
    origins, directions = camera_rays(cameras)
    depth = out.depth.permute(0, 2, 3, 1).cpu()
    keep = (out.accumulation.permute(0, 2, 3, 1)[..., 0] > opacity).cpu()
    if not bool(keep.any()):
        raise DiffcoreError(f"empty point cloud: no pixel of the views is more opaque than {opacity:g}; lower the opacity")
    points = (origins.cpu() + depth * directions.cpu())[keep]
    colors = out.rgb.permute(0, 2, 3, 1).cpu()[keep]
    rgba = np.concatenate([_bytes(colors), np.full((len(colors), 1), 255, np.uint8)], axis=1)
    return trimesh.PointCloud(points.numpy(), colors=rgba)


@torch.no_grad()
def turntable_frames(representation, cameras: Camera, chunk: int = 4) -> torch.Tensor:
    """The rgb renders (N, C, H, W) in [-1, 1] of ``cameras``, a few views at a time (on the CPU)."""
    if isinstance(representation, Representation3D):
        cameras = to_device(cameras, representation.bounds.device)
    frames = []
    for i in range(0, len(cameras), chunk):
        frames.append(representation.render(index(cameras, slice(i, i + chunk))).float().cpu())
    return torch.cat(frames)


def gif_bytes(frames: torch.Tensor, fps: float = 12.0) -> bytes:
    """Frames (N, C, H, W) in [-1, 1] as a looping GIF."""
    from PIL import Image

    pictures = [Image.fromarray(_bytes(f.permute(1, 2, 0).reshape(-1, f.shape[0])).reshape(f.shape[1], f.shape[2], 3)) for f in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=round(1000 / fps), loop=0)
    return buffer.getvalue()


def write_mesh(m, path: str | Path) -> Path:
    """Write a mesh or point cloud by the file's suffix (.ply, .obj, .glb) through trimesh."""
    path = Path(path)
    if path.suffix.lower() not in MESH_FORMATS:
        raise DiffcoreError(f"unknown mesh format {path.suffix!r}; use one of {', '.join(MESH_FORMATS)}")
    data = m.export(file_type=path.suffix.lower()[1:])
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path
