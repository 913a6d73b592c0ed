"""Meshes, point clouds and GIFs from a representation whose surface is known: one Gaussian blob."""

import io
import math

import numpy as np
import pytest
import torch

import diffcore
from diff_3d.cameras import CameraSampler
from diff_3d.export import gif_bytes, mesh, point_cloud, turntable_frames, write_mesh
from diff_3d.scene import BlobScene
from diffcore.errors import DiffcoreError

RADIUS, PEAK = 0.35, 40.0


@pytest.fixture(scope="module")
def blob():
    return BlobScene(centers=[[0.1, 0.0, -0.1]], radii=[RADIUS], albedos=[[0.8, -0.4, 0.2]], densities=[PEAK])


def test_the_mesh_is_the_iso_surface(blob, tmp_path):
    import trimesh

    surface = mesh(blob, resolution=48, threshold=5.0)
    iso = RADIUS * math.sqrt(2 * math.log(PEAK / 5.0))  # density 40 exp(-r^2 / 2 R^2) = 5
    r = np.linalg.norm(surface.vertices - np.array([0.1, 0.0, -0.1]), axis=1)
    assert abs(r.mean() - iso) < 0.01 and r.std() < 0.01
    assert surface.is_watertight and abs(surface.volume - 4 / 3 * math.pi * iso**3) < 0.03 * surface.volume  # oriented outwards
    outward = np.einsum("ij,ij->i", surface.vertex_normals, surface.vertices - np.array([0.1, 0.0, -0.1]))
    assert (outward > 0).mean() > 0.99
    for suffix in (".ply", ".obj", ".glb"):
        path = write_mesh(surface, tmp_path / f"blob{suffix}")
        back = trimesh.load(path, force="mesh", process=False)
        assert len(back.vertices) >= len(surface.vertices) * 0.99 and len(back.faces) == len(surface.faces)
    half = mesh(blob, resolution=32)  # by default, half the largest density on the grid
    assert half.metadata["threshold"] == pytest.approx(0.5 * PEAK, rel=0.05)
    shading = surface.visual.vertex_colors[:, :3].astype(float).mean(0)
    assert shading[0] > shading[2] > shading[1]  # the albedo's order: red, then blue, then green


def test_point_cloud_and_turntable(blob):
    views = CameraSampler(size=24).turntable(6)
    front = CameraSampler(size=24).turntable(1)
    cloud = point_cloud(blob, front, opacity=0.5)
    rendered = blob.render_outputs(front)
    kept = rendered.accumulation[0, 0] > 0.5
    assert len(cloud.vertices) == int(kept.sum()) > 50
    # each point projects back onto its own pixel's centre, at the rendered depth
    c2w = front.camera_to_worlds[0].double()
    local = (torch.as_tensor(cloud.vertices) - c2w[:, 3]) @ c2w[:, :3]  # camera coordinates
    u = float(front.fx) * local[:, 0] / -local[:, 2] + float(front.cx)
    v = -float(front.fy) * local[:, 1] / -local[:, 2] + float(front.cy)
    rows, cols = torch.nonzero(kept, as_tuple=True)
    assert torch.allclose(u, cols.double() + 0.5, atol=1e-3) and torch.allclose(v, rows.double() + 0.5, atol=1e-3)
    assert torch.allclose(local.norm(dim=1), rendered.depth[0, 0][kept].double(), atol=1e-4)
    frames = turntable_frames(blob, views)
    assert frames.shape == (6, 3, 24, 24)
    from PIL import Image

    gif = Image.open(io.BytesIO(gif_bytes(frames)))
    assert gif.n_frames == 6 and gif.size == (24, 24)


def test_nothing_to_export_is_a_one_line_error(blob):
    with pytest.raises(
        DiffcoreError,
        match=(
            r"empty mesh: the density never crosses the threshold 100 \(it lies between .* and 3.*\); choose --threshold inside that "
            r"range"
        ),
    ):
        mesh(blob, resolution=16, threshold=100.0)
    with pytest.raises(DiffcoreError, match="is not a 3-D representation"):
        mesh(diffcore.create("representation", "image"), resolution=8)
    with pytest.raises(DiffcoreError, match="empty point cloud"):
        point_cloud(diffcore.create("representation", "voxel", resolution=4, samples=4), CameraSampler(size=4).turntable(2))
    with pytest.raises(DiffcoreError, match="unknown mesh format '.stl'"):
        write_mesh(mesh(blob, resolution=16, threshold=5.0), "blob.stl")


def test_a_trained_grid_exports(tmp_path):
    from diff_3d.runs import load_run, save_run

    grid = diffcore.create("representation", "voxel", resolution=8, samples=8)
    with torch.no_grad():
        grid.grid[0, 0] = -10.0
        grid.grid[0, 0, 2:6, 2:6, 2:6] = 10.0  # a dense cube in the middle
    save_run(tmp_path, grid, "voxel:resolution=8,samples=8", {"steps": 0})
    back = load_run(tmp_path)
    assert torch.equal(back.grid, grid.grid)
    surface = mesh(back, resolution=12, threshold=1.0)
    assert len(surface.faces) > 0
