"""Point-cloud diffusion: procedural shapes on their surfaces, the point-voxel network, the prior, metrics, completion, IO, pictures."""

import itertools
import math

import numpy as np
import pytest
import torch

import diffcore
from diff_3d.points import metrics
from diff_3d.points.completion import MIN_PARTIAL, complete
from diff_3d.points.io import ply_bytes, read_points
from diff_3d.points.network import PointVoxelNet, devoxelize, grid_coordinates, voxelize
from diff_3d.points.prior import PointCloudPrior, default_schedule
from diff_3d.points.shapes import SHAPES, box_surface, cone_surface, cylinder_surface, shape, shapes, torus_surface
from diff_3d.points.turntable import KNOWN, render_points, turntable
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import Cond
from diffcore.testing import check_prior


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def tiny_prior(points=48, classes=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = PointVoxelNet(width=16, resolution=4, blocks=1, classes=classes, voxel_width=8)
    return PointCloudPrior(net.eval(), points=points, class_names=SHAPES[:classes] if classes else None)


# -- shapes ---------------------------------------------------------------------------------------


def test_every_shape_lies_on_its_surface():
    p = box_surface(4000, (0.3, 0.5, 0.7), g()).float()
    on_face = (p.abs() - torch.tensor([0.3, 0.5, 0.7])).abs().amin(dim=1)
    assert float(on_face.max()) < 1e-6 and bool((p.abs() <= torch.tensor([0.3, 0.5, 0.7]) + 1e-6).all())
    p = torus_surface(3000, 0.6, 0.2, g())
    assert float(((p[:, :2].norm(dim=1) - 0.6) ** 2 + p[:, 2] ** 2 - 0.2**2).abs().max()) < 1e-9
    p = cylinder_surface(3000, 0.5, 0.4, g())
    side = (p[:, :2].norm(dim=1) - 0.5).abs() < 1e-9
    cap = (p[:, 2].abs() - 0.4).abs() < 1e-9
    assert bool((side | cap).all()) and bool((p[:, :2].norm(dim=1) <= 0.5 + 1e-9).all())
    p = cone_surface(3000, 0.6, 1.2, g())  # apex at z = 0.6, base at z = -0.6
    lateral = (p[:, :2].norm(dim=1) - 0.6 * (0.6 - p[:, 2]) / 1.2).abs() < 1e-9
    base = (p[:, 2] + 0.6).abs() < 1e-9
    assert bool((lateral | base).all())


def test_surface_parts_are_drawn_in_proportion_to_their_areas():
    n = 20000
    p = box_surface(n, (0.2, 0.4, 0.8), g(1))
    on_x = (p[:, 0].abs() - 0.2).abs() < 1e-12  # the two x faces: area 2 * (0.4 * 0.8) of 2 * (0.08 + 0.16 + 0.32)
    share = 0.32 / 0.56
    assert abs(float(on_x.double().mean()) - share) < 4 * math.sqrt(share * (1 - share) / n)
    p = cylinder_surface(n, 0.5, 0.25, g(2))  # side 2 pi r 2h = pi/2, caps 2 pi r^2 = pi/2: half on the side
    side = float(((p[:, 2].abs() - 0.25).abs() > 1e-9).double().mean())
    assert abs(side - 0.5) < 4 * math.sqrt(0.25 / n)
    p = torus_surface(n, 0.6, 0.3, g(3))  # the outer half (cos v > 0) holds (pi R + 2 r) / (2 pi R) of the area
    outer = float((p[:, :2].norm(dim=1) > 0.6).double().mean())
    share = (math.pi * 0.6 + 2 * 0.3) / (2 * math.pi * 0.6)
    assert abs(outer - share) < 4 * math.sqrt(share * (1 - share) / n)


def test_shapes_are_seeded_labelled_and_inside_the_cube():
    a, la = shapes(10, 64, g(5))
    b, lb = shapes(10, 64, g(5))
    assert torch.equal(a, b) and torch.equal(la, lb) and a.shape == (10, 64, 3) and a.dtype == torch.float32
    assert bool((a.abs() <= 1).all()) and set(la.tolist()) <= set(range(5))
    sphere = shape("sphere", 100, g())
    assert float(sphere.norm(dim=1).std()) < 1e-6
    with pytest.raises(DiffcoreError, match="unknown shape 'pyramid'"):
        shape("pyramid", 10, g())
    with pytest.raises(DiffcoreError, match="unknown shape"):
        shapes(2, 10, g(), kinds=("cube",))


# -- network and prior -----------------------------------------------------------------------------


def test_voxelize_averages_and_devoxelize_interpolates_exactly():
    coords = torch.tensor([[[0.0, 0.0, 0.0], [0.2, 0.1, 0.0], [2.0, 1.0, 3.0]]])
    feats = torch.tensor([[[1.0], [3.0], [5.0]]])
    grid = voxelize(feats, coords, 4)
    assert float(grid[0, 0, 0, 0, 0]) == 2.0 and float(grid[0, 0, 2, 1, 3]) == 5.0 and float(grid.sum()) == 7.0
    ramp = torch.arange(4.0)[:, None, None].expand(4, 4, 4)  # value = the first grid index
    at = torch.tensor([[[1.5, 0.3, 2.7], [0.25, 3.0, 0.0]]])
    assert torch.allclose(devoxelize(ramp[None, None], at)[0, :, 0], torch.tensor([1.5, 0.25]), atol=1e-6)
    unit = grid_coordinates(torch.randn(2, 50, 3, generator=g()), 8)
    assert float(unit.min()) >= 0 and float(unit.max()) <= 7


def test_the_network_is_equivariant_to_point_order_and_takes_any_count():
    net = PointVoxelNet(width=16, resolution=4, blocks=2, classes=5, voxel_width=8)
    for p in net.out.parameters():
        torch.nn.init.normal_(p, std=0.1, generator=g(9))
    x = torch.randn(2, 40, 3, generator=g())
    perm = torch.randperm(40, generator=g(1))
    out = net(x, torch.tensor([3.0, 700.0]), torch.tensor([1, 5]))
    assert torch.allclose(net(x[:, perm], torch.tensor([3.0, 700.0]), torch.tensor([1, 5])), out[:, perm], atol=1e-5)
    assert net(x[:, :17], torch.tensor([3.0, 700.0]), torch.tensor([1, 5])).shape == (2, 17, 3)
    assert not torch.allclose(out, net(x, torch.tensor([3.0, 700.0]), torch.tensor([2, 5])))  # the label reaches the output


def test_the_prior_keeps_the_protocol_and_is_sampled_by_the_kernel():
    prior = tiny_prior(points=32, classes=5)
    check_prior(prior, cond=Cond(labels=torch.tensor([0, 4])))
    x = diffcore.sample(prior, 2, steps=4, cond=Cond(labels=torch.tensor([1])), generator=g())
    assert x.shape == (2, 32, 3) and bool(torch.isfinite(x).all())
    assert prior.with_points(100).sample_shape == (100, 3) and prior.with_points(100).network is prior.network
    with pytest.raises(DiffcoreError, match="class-conditional"):
        prior.predict(torch.zeros(1, 32, 3), 0.5)
    with pytest.raises(DiffcoreError, match="labels must lie in 0..5"):
        prior.predict(torch.zeros(1, 32, 3), 0.5, Cond(labels=torch.tensor([6])))
    with pytest.raises(ShapeError, match="expected point clouds"):
        prior.predict(torch.zeros(1, 32, 2), 0.5, prior.null_cond)


# -- metrics -------------------------------------------------------------------------------------


def test_chamfer_and_emd_agree_with_brute_force():
    x = torch.randn(5, 3, generator=g(1))
    y = torch.randn(5, 3, generator=g(2))
    d2 = ((x.double()[:, None] - y.double()[None]) ** 2).sum(-1)
    assert metrics.chamfer(x, y) == pytest.approx(float(d2.min(1).values.mean() + d2.min(0).values.mean()), rel=1e-9)
    d = d2.sqrt()
    best = min(sum(float(d[i, j]) for i, j in enumerate(perm)) for perm in itertools.permutations(range(5))) / 5
    assert metrics.emd(x, y) == pytest.approx(best, rel=1e-9)
    assert metrics.chamfer(x, x) == 0 and metrics.emd(x, x) == pytest.approx(0, abs=1e-12)
    with pytest.raises(ShapeError, match="same size"):
        metrics.emd(x, y[:4])
    with pytest.raises(DiffcoreError, match="non-finite"):
        metrics.chamfer(torch.full((3, 3), float("nan")), y)


def test_mmd_coverage_and_1nna_on_known_sets():
    d_gr = np.array([[1.0, 5.0, 9.0], [2.0, 4.0, 8.0]])  # both generated clouds are nearest to reference 0
    assert metrics.mmd(d_gr) == pytest.approx((1 + 4 + 8) / 3) and metrics.coverage(d_gr) == pytest.approx(1 / 3)
    ref = torch.randn(4, 16, 3, generator=g(3))
    far = ref + 10  # generated clouds far from every reference: the classifier is always right
    d = metrics.set_metrics(far, ref, distances=("cd",))
    assert d["1-nna-cd"] == 1.0 and d["cov-cd"] == 0.25
    same = metrics.set_metrics(ref, ref.clone(), distances=("cd",))  # each cloud's nearest is its copy in the other set
    assert same["1-nna-cd"] == 0.0 and same["mmd-cd"] == 0.0 and same["cov-cd"] == 1.0
    with pytest.raises(DiffcoreError, match="unknown Chamfer backend"):
        metrics.chamfer(ref[0], ref[1], backend="open3d")


# -- completion ----------------------------------------------------------------------------------


class DeltaNet(torch.nn.Module):
    """The exact noise prediction of a distribution that is one cloud ``target`` (a test oracle)."""

    classes = 0

    def __init__(self, target, schedule):
        super().__init__()
        self.target, self.schedule = target, schedule
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, steps, labels=None):
        t = (steps.double() + 1) / self.schedule.num_train_timesteps
        a, s = self.schedule.alpha(t).float()[:, None, None], self.schedule.sigma(t).float()[:, None, None]
        return (x - a * self.target) / s


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_completion_keeps_the_known_points_and_finds_the_rest_under_an_exact_prior(sampler):
    target = shape("torus", 64, g(4))
    schedule = default_schedule()
    prior = PointCloudPrior(DeltaNet(target, schedule), points=64, schedule=schedule)
    known = target[:20] + 0.01  # not the prior's points: completion must keep them as given
    x = complete(prior, known, n=3, steps=20, sampler=sampler, generator=g(1))
    assert torch.equal(x[:, :20], known.expand(3, -1, -1))
    assert torch.allclose(x[:, 20:], target[20:].expand(3, -1, -1), atol=1e-4)


def test_completion_refuses_bad_partial_clouds():
    prior = tiny_prior(points=48)
    with pytest.raises(DiffcoreError, match=f"needs at least {MIN_PARTIAL}"):
        complete(prior, torch.zeros(MIN_PARTIAL - 1, 3))
    bad = torch.zeros(20, 3)
    bad[3, 1] = float("inf")
    with pytest.raises(DiffcoreError, match="1 point\\(s\\) with non-finite"):
        complete(prior, bad)
    with pytest.raises(DiffcoreError, match="not fewer than the 48"):
        complete(prior, torch.zeros(48, 3))
    with pytest.raises(ShapeError, match="expected points"):
        complete(prior, torch.zeros(20, 2))


# -- files and pictures --------------------------------------------------------------------------


def test_ply_round_trip_and_other_formats(tmp_path):
    import trimesh

    x = torch.randn(30, 3, generator=g())
    colors = torch.rand(30, 3, generator=g(1))
    (tmp_path / "a.ply").write_bytes(ply_bytes(x, colors))
    loaded = trimesh.load(str(tmp_path / "a.ply"), process=False)
    assert np.array_equal(np.asarray(loaded.vertices, dtype=np.float32), x.numpy())
    assert np.array_equal(np.asarray(loaded.colors)[:, :3], (colors * 255).round().to(torch.uint8).numpy())
    assert torch.equal(read_points(tmp_path / "a.ply"), x)
    np.save(tmp_path / "b.npy", x.numpy())
    np.savetxt(tmp_path / "c.xyz", x.numpy())
    assert torch.equal(read_points(tmp_path / "b.npy"), x) and torch.allclose(read_points(tmp_path / "c.xyz"), x)
    (tmp_path / "d.xyz").write_text("1 2\n3 4\n")
    with pytest.raises(DiffcoreError, match="expected points"):
        read_points(tmp_path / "d.xyz")
    with pytest.raises(DiffcoreError, match="unknown point-cloud file type"):
        read_points(tmp_path / "e.obj")


def test_pictures_put_points_where_the_camera_sees_them_nearest_first():
    image = render_points(torch.tensor([[0.0, 0.0, 0.0]]), size=11, splat=1)
    assert int((image != 1).any(dim=0).sum()) == 1 and bool((image[:, 5, 5] != 1).all())  # one pixel, the centre
    # two points on the line of sight at azimuth 0 (camera on +x): the nearer (+x) one, which is known (orange), is drawn
    pair = torch.tensor([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]])
    seen = render_points(pair, size=11, splat=1, elevation=0.0, azimuth=0.0, known=1)
    assert torch.allclose(seen[:, 5, 5], torch.tensor(KNOWN) * 2 - 1)
    hidden = render_points(pair.flip(0), size=11, splat=1, elevation=0.0, azimuth=0.0, known=1)
    assert not torch.allclose(hidden[:, 5, 5], torch.tensor(KNOWN) * 2 - 1)
    frames = turntable(torch.randn(50, 3, generator=g()) * 0.3, frames=4, size=16)
    assert frames.shape == (4, 3, 16, 16) and float(frames.min()) >= -1 and float(frames.max()) <= 1
