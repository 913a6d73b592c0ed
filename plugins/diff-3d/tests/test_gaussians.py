"""3-D Gaussians: the torch rasteriser against independent oracles, densification and pruning in a loop, the 3DGS .ply."""

import math

import numpy as np
import pytest
import torch

import diffcore
from diff_3d.cameras import CameraSampler, camera_rays, orbit_cameras
from diff_3d.distill import distill
from diff_3d.export import mesh
from diff_3d.representations.gaussians import SH_C0, Gaussians
from diff_3d.representations.splatting import LOW_PASS, covariances, project, quaternion_matrix, rasterize
from diffcore.errors import DiffcoreError
from diffcore.protocols import Representation3D

IDENTITY = torch.tensor([[1.0, 0.0, 0.0, 0.0]])


def camera(size=9, azimuth=30.0, elevation=20.0):
    return orbit_cameras(torch.tensor([azimuth]), elevation, 3.0, size=size)


def test_a_gaussian_on_a_pixel_ray_lands_on_that_pixel_with_its_opacity():
    cam = camera()
    origins, directions = camera_rays(cam)
    point = origins[0, 2, 6] + 2.5 * directions[0, 2, 6]  # on the ray through row 2, column 6
    out = rasterize(point[None], torch.full((1, 3), 1e-3), IDENTITY, torch.tensor([0.7]), torch.zeros(1, 3), cam, background=torch.ones(3))
    acc = out["accumulation"][0, 0]
    assert divmod(int(acc.argmax()), 9) == (2, 6) and float(acc[2, 6]) == pytest.approx(0.7, abs=1e-5)
    assert float(out["depth"][0, 0, 2, 6]) == pytest.approx(0.7 * 2.5, abs=1e-4)  # distance along the ray, weighted
    # a point Gaussian is the low-pass filter alone: the next pixel has exp(-1 / (2 * 0.3)) of the opacity
    assert float(acc[2, 7]) == pytest.approx(0.7 * math.exp(-1 / (2 * LOW_PASS)), rel=2e-3)


def test_the_projected_covariance_is_the_jacobian_of_the_camera_projection():
    cam = camera()
    means = torch.tensor([[0.2, -0.1, 0.3]], dtype=torch.float64)
    scales = torch.tensor([[0.1, 0.2, 0.05]], dtype=torch.float64)
    quats = torch.tensor([[0.9, 0.1, -0.3, 0.2]], dtype=torch.float64)
    c2w = cam.camera_to_worlds[0].double()
    fx, fy, cx, cy = (float(getattr(cam, k)[0]) for k in ("fx", "fy", "cx", "cy"))

    def pixel(x):  # the inverse of camera_rays: where the ray through a world point leaves the image
        local = c2w[:, :3].T @ (x - c2w[:, 3])
        return torch.stack([fx * local[0] / -local[2] + cx, -fy * local[1] / -local[2] + cy])

    jac = torch.autograd.functional.jacobian(pixel, means[0])
    cov = covariances(scales, quats)[0]
    uv, cov2, _, _ = project(means, covariances(scales, quats), c2w, fx, fy, cx, cy)
    assert torch.allclose(uv[0], pixel(means[0]), atol=1e-10)
    assert torch.allclose(cov2[0], jac @ cov @ jac.T + LOW_PASS * torch.eye(2, dtype=torch.float64), atol=1e-9)
    rot = quaternion_matrix(quats)[0]
    assert torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-12) and float(torch.det(rot)) == pytest.approx(1.0)


def test_gaussians_composite_front_to_back_whatever_their_order():
    cam = camera()
    origins, directions = camera_rays(cam)
    means = torch.stack([origins[0, 4, 4] + 2.5 * directions[0, 4, 4], origins[0, 4, 4] + 3.5 * directions[0, 4, 4]])  # front, back
    colors = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]])
    args = (torch.full((2, 3), 0.05), IDENTITY.repeat(2, 1), torch.tensor([0.5, 0.5]))
    out = rasterize(means, args[0], args[1], args[2], colors, cam, background=torch.ones(3))["rgb"][0, :, 4, 4]
    # the centre pixel: the front (red) Gaussian's 0.5 alpha, the back (green) one's 0.5 through the front's 0.5, then white
    centre_alpha = 0.5  # both sit on the central ray, where the kernel is 1
    expected = centre_alpha * colors[0] + centre_alpha * (1 - centre_alpha) * colors[1] + (1 - centre_alpha) ** 2 * torch.ones(3)
    assert torch.allclose(out, expected, atol=1e-5)
    flipped = rasterize(means.flip(0), args[0], args[1], args[2], colors.flip(0), cam, background=torch.ones(3))["rgb"][0, :, 4, 4]
    assert torch.allclose(flipped, out, atol=1e-6)


def test_the_representation_is_differentiable_and_a_representation3d():
    splats = Gaussians(count=40, seed=1)
    assert isinstance(splats, Representation3D) and splats.count == 40 and splats.means.shape == (160, 3)
    with torch.no_grad():
        splats.log_scales.add_(0.5 * torch.randn(160, 3, generator=torch.Generator().manual_seed(0)))  # anisotropic: rotations matter
    images = splats.render(orbit_cameras(torch.tensor([0.0, 120.0]), 10.0, 2.5, size=16))
    images.square().mean().backward()
    for p in (splats.means, splats.log_scales, splats.quats, splats.opacity_logits, splats.color_raw):
        assert p.grad is not None and float(p.grad[:40].abs().sum()) > 0 and float(p.grad[40:].abs().sum()) == 0
    one = Gaussians(count=1, init_opacity=0.5, seed=0)
    centre = one.means[:1].detach()
    with torch.no_grad():
        assert float(one.density(centre)[0]) == pytest.approx(one.density_scale * 0.5, rel=1e-5)
        assert torch.allclose(one.colors(centre), torch.zeros(1, 3), atol=1e-6)
    with pytest.raises(DiffcoreError, match="unknown rasteriser backend"):
        Gaussians(count=4, backend="vulkan")


def test_densification_splits_clones_and_prunes_inside_any_loop():
    splats = Gaussians(count=30, capacity=100, grow=0.5, densify_every=2, densify_from=1, init_scale=0.02, seed=0)
    prior = diffcore.create("prior", "analytic-scene", size=16)
    record = distill(
        prior,
        splats,
        diffcore.create("distiller", "sds"),
        steps=6,
        lr=0.01,
        cameras=CameraSampler(size=16),
        generator=torch.Generator().manual_seed(0),
    )
    assert record.steps == 6 and splats.count == 67  # densified after training renders 3 and 5: 30 + 15, then + 22
    with torch.no_grad():
        splats.log_scales[:5] = math.log(0.2)  # large: split in two, each 1.6 times smaller
    splats._grad_sum.zero_()
    splats._grad_sum[:5] = 1.0
    splats._grad_count[:5] = 1.0
    before = splats.count
    free = int((~splats.active).nonzero()[0, 0])
    splats.grow = 5.5 / before
    stats = splats.densify_and_prune(torch.Generator().manual_seed(0))
    assert stats["split"] == 5 and stats["cloned"] == 0 and splats.count == before + 5
    assert torch.allclose(splats.log_scales[:1].exp(), torch.full((1, 3), 0.2 / 1.6))
    assert bool(splats.active[free])
    with torch.no_grad():
        splats.opacity_logits[:3] = -20.0
    stats = splats.densify_and_prune()
    assert stats["pruned"] == 3 and not bool(splats.active[:3].any())


def test_the_3dgs_ply_has_the_standard_layout(tmp_path):
    splats = Gaussians(count=7, seed=2)
    with torch.no_grad():
        splats.color_raw[:7] = torch.linspace(-1, 1, 21).reshape(7, 3)
    data = splats.splat_ply()
    head, body = data.split(b"end_header\n")
    names = [line.split()[-1] for line in head.decode().splitlines() if line.startswith("property float")]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *(f"f_rest_{i}" for i in range(45)), "opacity"]
    assert names == [*expected, "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert b"element vertex 7" in head and b"binary_little_endian" in head
    rows = np.frombuffer(body, dtype="<f4").reshape(7, len(names))
    column = {name: rows[:, i] for i, name in enumerate(names)}
    rgb = (np.tanh(torch.linspace(-1, 1, 21).reshape(7, 3).numpy()) + 1) / 2
    assert np.allclose(np.stack([column[f"f_dc_{i}"] for i in range(3)], 1) * SH_C0 + 0.5, rgb, atol=1e-6)
    assert np.allclose(np.stack([column[k] for k in "xyz"], 1), splats.means[:7].detach().numpy())
    assert np.allclose(column["scale_0"], math.log(0.06)) and np.allclose(column["rot_0"], 1.0)
    surface = mesh(splats, resolution=12)
    assert len(surface.vertices) > 0


@pytest.mark.gpu
def test_gsplat_draws_the_same_images_on_cuda():
    """gsplat's CUDA rasteriser against the torch one: max pixel difference below 0.02 (of the [-1, 1] range) on rgb and opacity."""
    splats = Gaussians(count=300, seed=3, init_opacity=0.5).cuda()
    with torch.no_grad():
        splats.color_raw.uniform_(-2, 2)
    cams = orbit_cameras(torch.tensor([0.0, 90.0]), 20.0, 2.5, size=32)
    cams = type(cams)(cams.camera_to_worlds.cuda(), cams.fx.cuda(), cams.fy.cuda(), cams.cx.cuda(), cams.cy.cuda(), 32, 32)
    g = splats.activated()
    args = (g["means"], g["scales"], g["quats"], g["opacities"], g["colors"], cams)
    ours = rasterize(*args, background=splats.background)
    theirs = rasterize(*args, background=splats.background, backend="gsplat")
    assert float((ours["rgb"] - theirs["rgb"]).abs().max()) < 0.02
    assert float((ours["accumulation"] - theirs["accumulation"]).abs().max()) < 0.02


def test_a_distilled_run_of_gaussians_exports_its_splats(tmp_path):
    from click.testing import CliRunner

    from diffcore.cli import cli

    run = tmp_path / "run"
    args = ["--prior", "analytic-scene:size=16", "--size", "16", "--steps", "3", "--representation", "gaussians:count=50"]
    res = CliRunner().invoke(cli, ["3d", "distill", *args, "--out", str(run)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["3d", "export", "--config", str(run), "--resolution", "12", "--frames", "2", "--size", "16"])
    assert res.exit_code == 0, res.output
    data = (run / "export" / "splats.ply").read_bytes()
    assert data.startswith(b"ply\n") and b"element vertex 50\n" in data


def test_a_clone_shares_its_parents_opacity_and_split_children_come_from_the_parent():
    one = Gaussians(count=1, capacity=2, init_scale=0.02, init_opacity=0.6, grow=1.0, seed=0)
    one._grad_sum[0], one._grad_count[0] = 1.0, 1.0
    assert one.densify_and_prune() == {"split": 0, "cloned": 1, "pruned": 0, "count": 2}
    o = torch.sigmoid(one.opacity_logits.detach())
    assert torch.equal(one.means[0], one.means[1]) and float(1 - (1 - o[0]) * (1 - o[1])) == pytest.approx(0.6, abs=1e-6)
    big = Gaussians(count=1, capacity=2, init_scale=0.2, grow=1.0, seed=0)
    parent = big.means[0].detach().clone()
    big._grad_sum[0], big._grad_count[0] = 1.0, 1.0
    assert big.densify_and_prune(torch.Generator().manual_seed(0))["split"] == 1
    offsets = (big.means.detach() - parent).norm(dim=1)
    assert bool((offsets > 0).all()) and bool((offsets < 4 * 0.2 * math.sqrt(3)).all()) and not torch.equal(big.means[0], big.means[1])


@pytest.mark.parametrize("name", ["sds", "sjc", "vsd"])
def test_every_distiller_trains_gaussians(name):
    splats = Gaussians(count=60, seed=4)
    before = splats.means.detach().clone()
    record = distill(
        diffcore.create("prior", "analytic-scene", size=16),
        splats,
        diffcore.create("distiller", name),
        steps=2,
        lr=0.01,
        cameras=CameraSampler(size=16),
        generator=torch.Generator().manual_seed(0),
    )
    assert record.steps == 2 and all(math.isfinite(v) for v in record.losses)
    assert not torch.equal(splats.means.detach()[:60], before[:60]) and torch.equal(splats.means.detach()[60:], before[60:])
