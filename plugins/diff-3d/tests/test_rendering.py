"""Volume rendering against closed forms; the representations' contract; the known scene."""

import math

import pytest
import torch

import diffcore
from diff_3d.cameras import CameraSampler, orbit_cameras
from diff_3d.rendering import composite, ray_box, render_rays
from diff_3d.scene import BlobScene
from diffcore.protocols import Representation, Representation3D

BOX = torch.tensor([[-1.0] * 3, [1.0] * 3])


def test_ray_box_entry_and_exit():
    o = torch.tensor([[0.0, -3.0, 0.0], [0.0, 0.0, 0.0], [0.0, -3.0, 5.0]])
    d = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    near, far = ray_box(o, d, BOX)
    assert near.tolist() == [2.0, 0.0, near[2].item()] and far[:2].tolist() == [4.0, 1.0]
    assert float(far[2] - near[2]) == 0.0  # a miss


@pytest.mark.parametrize("density", [0.3, 2.0])
def test_a_constant_medium_has_the_closed_form_opacity_and_depth(density):
    """Through a slab of constant density sigma and length L: opacity 1 - exp(-sigma L); the discrete expected
    depth over equal intervals is the sum of the midpoints weighted by the exact interval absorptions."""

    def medium(points):
        return torch.full((len(points),), density), torch.full((len(points), 3), 0.25)

    o, d = torch.tensor([[0.0, -3.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    out = render_rays(medium, o, d, BOX, samples=32, background=torch.full((3,), -1.0))
    opacity = 1 - math.exp(-density * 2.0)
    assert float(out["accumulation"]) == pytest.approx(opacity, rel=1e-5)
    assert float(out["rgb"][0, 0]) == pytest.approx(0.25 * opacity - (1 - opacity), rel=1e-5)
    delta = 2.0 / 32
    s = 2.0 + delta * (torch.arange(32, dtype=torch.float64) + 0.5)
    w = (1 - math.exp(-density * delta)) * torch.exp(-density * delta * torch.arange(32, dtype=torch.float64))
    assert float(out["depth"]) == pytest.approx(float((w * s).sum() / w.sum()), rel=1e-5)


def test_weights_sum_to_one_minus_transmittance():
    sigma = torch.rand(5, 16, generator=torch.Generator().manual_seed(0)) * 10
    w = composite(sigma, torch.full((5, 1), 0.1))
    assert torch.allclose(w.sum(1), 1 - torch.exp(-(sigma * 0.1).sum(1)), atol=1e-5)


def test_normals_of_a_blob_point_outwards():
    scene = BlobScene(centers=[[0.0, 0.0, 0.0]], radii=[0.3], albedos=[[0.0, 0.0, 0.0]], densities=[40.0])
    cam = orbit_cameras(torch.tensor([0.0]), 0.0, 2.5, fov=30.0, size=9)
    rep = diffcore.create("representation", "voxel", resolution=48, samples=96)
    with torch.no_grad():
        points = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, 48)] * 3, indexing="ij"), -1).reshape(-1, 3)
        raw = torch.log(torch.expm1(scene.density(points[:, [2, 1, 0]]).clamp_min(1e-4))) + rep.shift  # the voxel grid's (z, y, x) layout
        rep.grid[0, 0] = raw.reshape(48, 48, 48)
    with torch.no_grad():  # normals still take their own gradient
        out = rep.render_outputs(cam)
    centre = out.normals[0, :, 4, 4]
    assert float(out.accumulation[0, 0, 4, 4]) > 0.99
    assert torch.allclose(centre / centre.norm(), torch.tensor([0.0, -1.0, 0.0]), atol=0.05)  # facing the camera, on -y
    exact = BlobScene(centers=[[0.0, 0.0, 0.0]], radii=[0.3], albedos=[[0.0, 0.0, 0.0]], densities=[40.0], samples=1024).render_outputs(cam)
    assert torch.allclose(out.depth, exact.depth, atol=0.02)  # the grid holds the blob's density: the same depths
    assert torch.allclose(out.accumulation, exact.accumulation, atol=0.02)


@pytest.mark.parametrize("name", ["voxel", "triplane", "image"])
def test_representations_satisfy_their_protocols(name):
    options = {"resolution": 8, "samples": 8} if name != "image" else {"size": 8}
    rep = diffcore.create("representation", name, **options)
    assert isinstance(rep, Representation)
    cam = CameraSampler(size=8).sample(2, torch.Generator().manual_seed(0))
    images = rep.render(cam)
    assert images.shape == (2, 3, 8, 8) and float(images.detach().abs().max()) <= 1
    images.sum().backward()
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in rep.parameters())
    if name != "image":
        assert isinstance(rep, Representation3D)
        out = rep.render_outputs(cam)
        assert out.depth.shape == out.accumulation.shape == (2, 1, 8, 8) and out.normals.shape == (2, 3, 8, 8)
        assert torch.allclose(out.rgb, images.detach(), atol=1e-6)


def test_the_scene_is_the_same_from_every_view_at_a_point():
    scene = BlobScene.default()
    cams = orbit_cameras(torch.tensor([0.0, 120.0, 240.0]), 20.0, 2.5, fov=50.0, size=16)
    out = scene.render_outputs(cams)
    assert out.rgb.shape == (3, 3, 16, 16) and not torch.allclose(out.rgb[0], out.rgb[1])
    assert float(out.accumulation.amax()) > 0.99 and float(out.accumulation[:, :, 0, 0].amax()) < 0.01  # corners see the background
    assert torch.allclose(out.rgb[:, :, 0, 0], torch.ones(3, 3), atol=0.02)
