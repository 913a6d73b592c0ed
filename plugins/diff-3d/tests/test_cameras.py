"""The camera convention: diffcore's Camera, diff-3d's rays and nerfstudio's Cameras agree exactly."""

import math

import pytest
import torch

from diff_3d.cameras import CameraSampler, camera_rays, focal_from_fov, look_at, orbit_cameras, with_size
from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera


def test_rays_are_nerfstudios_rays():
    from diff_3d.ns.cameras import from_nerfstudio, ray_bundle, to_nerfstudio

    cams = CameraSampler(size=6, fov=(40.0, 60.0)).sample(3, torch.Generator().manual_seed(0))
    cams = Camera(cams.camera_to_worlds, cams.fx, cams.fy * 1.1, cams.cx + 0.3, cams.cy - 0.2, 7, 5)  # non-square, off-centre
    origins, directions = camera_rays(cams)
    ns = to_nerfstudio(cams)
    for i in range(len(cams)):
        bundle = ns.generate_rays(camera_indices=i, keep_shape=True)
        assert torch.allclose(bundle.origins, origins[i], atol=1e-6)
        assert torch.allclose(bundle.directions, directions[i], atol=1e-6)
    back = from_nerfstudio(ns)
    assert torch.equal(back.camera_to_worlds, cams.camera_to_worlds) and (back.width, back.height) == (7, 5)
    flat = ray_bundle(cams)
    assert torch.allclose(flat.directions, directions.reshape(-1, 3)) and flat.camera_indices[-1].item() == 2


def test_an_orbit_camera_looks_at_the_target_with_z_up():
    cam = orbit_cameras(torch.tensor([0.0, 90.0, 30.0]), torch.tensor([0.0, 0.0, 60.0]), 3.0, fov=50.0, size=2)
    c2w = cam.camera_to_worlds
    rotation, position = c2w[:, :, :3], c2w[:, :, 3]
    assert torch.allclose(rotation.transpose(1, 2) @ rotation, torch.eye(3).expand(3, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(3), atol=1e-6)
    assert torch.allclose(-rotation[:, :, 2], -position / position.norm(dim=1, keepdim=True), atol=1e-6)  # looks along -z at the origin
    assert bool((rotation[:, 2, 1] > 0).all())  # the camera's up leans to the world's +z
    assert torch.allclose(position[0], torch.tensor([0.0, -3.0, 0.0]), atol=1e-6)  # azimuth 0: the front, on -y
    assert torch.allclose(position[1], torch.tensor([3.0, 0.0, 0.0]), atol=1e-6)
    assert math.isclose(float(position[2, 2]), 3.0 * math.sin(math.radians(60)), rel_tol=1e-6)
    straight_down = look_at(torch.tensor([[0.0, 0.0, 2.0]]))
    assert torch.isfinite(straight_down).all()


def test_pixel_centres_and_field_of_view():
    cam = orbit_cameras(torch.tensor([0.0]), 0.0, 2.0, fov=90.0, size=2)
    assert float(cam.fx) == pytest.approx(1.0) == float(focal_from_fov(90.0, 2))
    _, d = camera_rays(cam)
    # pixel (0, 0) of a 2x2 image with a 90-degree fov: camera direction (-0.5, 0.5, -1), i.e. left, up, forward
    expected = torch.tensor([-0.5, 1.0, 0.5]) / math.sqrt(1.5)
    assert torch.allclose(d[0, 0, 0], expected, atol=1e-6)
    big = with_size(cam, 8)
    assert float(big.fx) == pytest.approx(4.0) and big.width == big.height == 8


def test_the_sampler_draws_inside_its_ranges_from_its_generator():
    sampler = CameraSampler(size=4, radius=(2.0, 3.0), elevation=(10.0, 30.0), azimuth=(-45.0, 45.0), fov=(40.0, 50.0))
    a = sampler.sample(64, torch.Generator().manual_seed(1))
    b = sampler.sample(64, torch.Generator().manual_seed(1))
    assert torch.equal(a.camera_to_worlds, b.camera_to_worlds)
    position = a.camera_to_worlds[:, :, 3]
    radius = position.norm(dim=1)
    elevation = torch.rad2deg(torch.asin(position[:, 2] / radius))
    azimuth = torch.rad2deg(torch.atan2(position[:, 0], -position[:, 1]))
    assert float(radius.min()) >= 2.0 - 1e-5 and float(radius.max()) <= 3.0 + 1e-5
    assert float(elevation.min()) >= 10.0 - 1e-3 and float(elevation.max()) <= 30.0 + 1e-3
    assert float(azimuth.abs().max()) <= 45.0 + 1e-3
    fov = torch.rad2deg(2 * torch.atan(2 / a.fx[:, 0]))
    assert float(fov.min()) >= 40.0 - 1e-3 and float(fov.max()) <= 50.0 + 1e-3
    held = sampler.held_out(4)
    assert len(held) == 4 and len(sampler.turntable(5)) == 5


def test_bad_cameras_fail_on_one_line():
    with pytest.raises(DiffcoreError, match="camera_to_worlds must be an"):
        Camera(torch.zeros(2, 3, 3), 1.0, 1.0, 1.0, 1.0, 2, 2)
    with pytest.raises(DiffcoreError, match="camera fx has 3 values; expected 1 or 2"):
        Camera(torch.zeros(2, 3, 4), torch.ones(3), 1.0, 1.0, 1.0, 2, 2)
    with pytest.raises(DiffcoreError, match="elevation must lie in"):
        CameraSampler(elevation=(-100.0, 0.0))
    with pytest.raises(DiffcoreError, match="low <= high"):
        CameraSampler(radius=(3.0, 2.0))
