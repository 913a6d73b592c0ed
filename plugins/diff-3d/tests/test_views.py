"""View-conditioned priors and novel views (diff_3d.views): poses, the procedural scenes, the
training pairs, the prior's contract, its folder, the metrics, the evaluation and 3DiM's
stochastic conditioning, on tiny networks and exact stand-in priors."""

from __future__ import annotations

import math

import pytest
import torch

from diff_3d.cameras import CameraSampler, orbit_cameras
from diff_3d.views.data import pairs, split_generator
from diff_3d.views.metrics import psnr, ssim
from diff_3d.views.network import NetworkConfig, ViewUNet
from diff_3d.views.poses import compose, relative_pose
from diff_3d.views.prior import ViewPrior, check_view_prior, is_view_conditioned, load_view_prior, save_view_prior
from diff_3d.views.sampler import stochastic_conditioning
from diff_3d.views.scenes import PrimitiveScene
from diffcore.errors import CheckpointError, DiffcoreError, ShapeError
from diffcore.priors import Guided
from diffcore.protocols import Cond, Prediction, PriorBase

TINY = NetworkConfig(
    size=8, block_out_channels=(8, 16), layers_per_block=1, attention=(False, True), attention_head_dim=8, norm_num_groups=4, pose_hidden=16
)


def tiny_prior(seed: int = 0) -> ViewPrior:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = ViewUNet(TINY)
    return ViewPrior(network.eval().requires_grad_(False), clip_x0=False)


def test_relative_pose_ignores_where_the_pair_stands_and_composes_back():
    ref = orbit_cameras(torch.tensor([10.0, -60.0]), torch.tensor([15.0, 30.0]), torch.tensor([2.0, 2.5])).camera_to_worlds
    tgt = orbit_cameras(torch.tensor([80.0, 100.0]), torch.tensor([-5.0, 40.0]), torch.tensor([2.4, 2.1])).camera_to_worlds
    rel = relative_pose(ref, tgt)
    assert torch.allclose(compose(ref, rel), tgt, atol=1e-5)
    angle = 0.7  # move and turn both cameras together: the relative pose stays
    rigid = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    shift = torch.tensor([0.3, -1.0, 0.5])

    def moved(c2w):
        return torch.cat([rigid @ c2w[:, :, :3], (rigid @ c2w[:, :, 3:]) + shift[:, None]], dim=-1)

    assert torch.allclose(relative_pose(moved(ref), moved(tgt)), rel, atol=1e-5)
    with pytest.raises(ShapeError, match="camera-to-world"):
        relative_pose(torch.zeros(2, 3, 3), tgt)


def test_box_and_cylinder_depths_are_exact():
    camera = orbit_cameras(torch.tensor([0.0]), 0.0, 3.0, fov=10.0, size=3)  # looks along +y at the origin; the centre ray is on the axis
    box = PrimitiveScene(kinds=("box",), centers=[[0.0, 0.0, 0.0]], sizes=[[0.5, 0.4, 0.3]], angles=[0.0], albedos=[[0.0, 0.0, 0.0]])
    cylinder = PrimitiveScene(
        kinds=("cylinder",), centers=[[0.0, 0.0, 0.0]], sizes=[[0.25, 0.25, 0.6]], angles=[0.0], albedos=[[0.0, 0.0, 0.0]]
    )
    assert float(box.render_outputs(camera).depth[0, 0, 1, 1]) == pytest.approx(3.0 - 0.4, abs=1e-5)
    assert float(cylinder.render_outputs(camera).depth[0, 0, 1, 1]) == pytest.approx(3.0 - 0.25, abs=1e-5)
    top = orbit_cameras(torch.tensor([0.0]), 90.0, 3.0, fov=10.0, size=3)  # from above: the cap at z = 0.6
    assert float(cylinder.render_outputs(top).depth[0, 0, 1, 1]) == pytest.approx(3.0 - 0.6, abs=1e-4)


def test_pairs_are_fixed_by_the_seed_and_hold_their_truth():
    a, b = pairs(3, split_generator(5, "train")), pairs(3, split_generator(5, "train"))
    assert torch.equal(a.reference, b.reference) and torch.equal(a.target, b.target)
    held = pairs(3, split_generator(5, "held-out"))
    assert not torch.equal(held.reference, a.reference)
    assert torch.allclose(a.relative, relative_pose(a.reference_cameras.camera_to_worlds, a.target_cameras.camera_to_worlds))
    from diff_3d.cameras import index

    for i, scene in enumerate(a.scenes):
        assert torch.equal(scene.render(index(a.target_cameras, i)), a.target[i : i + 1])
        assert torch.equal(scene.render(index(a.reference_cameras, i)), a.reference[i : i + 1])
    assert a.reference.min() >= -1 and a.reference.max() <= 1


def test_prior_contract_reference_of_zeros_is_unconditional_and_guidance_works():
    prior = tiny_prior()
    assert is_view_conditioned(prior) and prior.accepts == frozenset({"image", "camera"})
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    ref = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
    rel = relative_pose(
        orbit_cameras(torch.tensor([0.0]), 20.0, 2.0).camera_to_worlds, orbit_cameras(torch.tensor([60.0]), 10.0, 2.2).camera_to_worlds
    )
    cond = prior.predict(x, 0.4, Cond(image=ref, camera=rel))
    uncond = prior.predict(x, 0.4)
    # no reference: the camera does not matter, and it equals the null cond
    assert torch.equal(prior.predict(x, 0.4, Cond(image=torch.zeros(1, 3, 8, 8), camera=rel)).eps, uncond.eps)
    assert torch.equal(prior.predict(x, 0.4, prior.null_cond).eps, uncond.eps)
    assert not torch.allclose(cond.eps, uncond.eps)
    alpha, sigma = prior.schedule.alpha(torch.tensor(0.4)), prior.schedule.sigma(torch.tensor(0.4))
    assert torch.allclose(alpha * cond.x0 + sigma * cond.eps, x, atol=1e-5)  # unclipped: consistent
    guided = Guided(prior, 2.5, Cond(image=ref, camera=rel)).predict(x, 0.4)
    assert torch.allclose(guided.eps, uncond.eps + 2.5 * (cond.eps - uncond.eps), atol=1e-5)
    with pytest.raises(DiffcoreError, match="needs the relative pose"):
        prior.predict(x, 0.4, Cond(image=ref))
    with pytest.raises(ShapeError, match="cond.image"):
        prior.predict(x, 0.4, Cond(image=torch.zeros(1, 3, 16, 16), camera=rel))


def test_view_prior_check_names_what_a_prior_accepts():
    from diffcore.priors import GaussianMixturePrior

    with pytest.raises(DiffcoreError, match=r"zoo:digits is not view-conditioned \(it accepts nothing"):
        check_view_prior(GaussianMixturePrior(torch.zeros(1, 2)), "zoo:digits")
    check_view_prior(tiny_prior())


def test_saved_folder_loads_the_same_network_in_float16(tmp_path):
    prior = tiny_prior(3)
    save_view_prior(prior, tmp_path / "views")
    loaded = load_view_prior(tmp_path / "views", clip_x0=False)
    for (name, a), (_, b) in zip(prior.network.state_dict().items(), loaded.network.state_dict().items()):
        assert torch.equal(a.half().float(), b), name
    with pytest.raises(CheckpointError, match="lacks"):
        load_view_prior(tmp_path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        v_prior = ViewPrior(ViewUNet(TINY).eval().requires_grad_(False), clip_x0=False, prediction_type="v_prediction")
    save_view_prior(v_prior, tmp_path / "v")
    again = load_view_prior(tmp_path / "v", clip_x0=False)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    pred = again.predict(x, 0.7)
    alpha, sigma = again.schedule.alpha(torch.tensor(0.7)), again.schedule.sigma(torch.tensor(0.7))
    assert again.prediction_type == "v_prediction" and torch.allclose(alpha * pred.x0 + sigma * pred.eps, x, atol=1e-5)
    v = again.network(
        x,
        torch.full((2,), float(again.schedule.model_time(torch.tensor(0.7, dtype=torch.float64)))),
        *[torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 4)],
    )
    assert torch.allclose(pred.eps, alpha * v + sigma * x, atol=1e-4)  # v = alpha eps - sigma x0  =>  eps = alpha v + sigma x_t


def test_denoising_loss_trains_the_pose_embedding():
    from diffcore.training import denoising_loss

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = ViewUNet(TINY)
    prior = ViewPrior(network, clip_x0=True)
    batch = pairs(
        2, torch.Generator().manual_seed(0), cameras=CameraSampler(size=8, radius=(2.0, 2.4), elevation=(0.0, 40.0), fov=(50.0, 50.0))
    )
    loss = denoising_loss(
        prior, batch.target, cond=Cond(image=batch.reference, camera=batch.relative), generator=torch.Generator().manual_seed(1)
    )
    loss.backward()
    assert network.pose[0].weight.grad is not None and float(network.pose[0].weight.grad.abs().sum()) > 0


def test_ssim_and_psnr_match_their_definitions():
    skimage = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 20, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    ours = ssim(x, y)
    for i in range(2):
        theirs = skimage.structural_similarity(
            ((x[i] + 1) / 2).permute(1, 2, 0).numpy(),
            ((y[i] + 1) / 2).permute(1, 2, 0).numpy(),
            channel_axis=2,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        assert float(ours[i]) == pytest.approx(float(theirs), abs=1e-5)
    assert float(psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.2))[0]) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01 on [0, 1]


class AroundReference(PriorBase):
    """An exact view-conditioned stand-in: x0 ~ N(reference + offset(camera), s^2 I), the offset from the relative
    translation's x; it records its conds."""

    accepts = frozenset({"image", "camera"})
    prediction_type = "epsilon"

    def __init__(self, s: float = 0.01):
        from diffcore.schedules import DiscreteSchedule

        self.schedule = DiscreteSchedule.linear(1000)
        self.sample_shape = (3, 4, 4)
        self.s = s
        self.calls: list[Cond] = []
        self.null_cond = Cond(image=torch.zeros(1, 3, 4, 4), camera=torch.eye(4)[None, :3])

    def predict(self, x_t, t, cond=None):
        self.calls.append(cond)
        t = torch.as_tensor(t, dtype=torch.float64)
        alpha, sigma = self.schedule.alpha(t).float(), self.schedule.sigma(t).float()
        m = cond.image + 0.1 * cond.camera[:, 0, 3].reshape(-1, 1, 1, 1)
        v = alpha**2 * self.s**2 + sigma**2
        return Prediction(x0=m + alpha * self.s**2 / v * (x_t - alpha * m), eps=sigma / v * (x_t - alpha * m))


def test_stochastic_conditioning_draws_the_view_of_each_step_from_a_growing_pool():
    prior = AroundReference()
    views = torch.stack([torch.full((3, 4, 4), -0.5), torch.full((3, 4, 4), 0.5)])
    cams = orbit_cameras(torch.tensor([0.0, 90.0]), 20.0, 2.0).camera_to_worlds
    targets = orbit_cameras(torch.tensor([45.0, 200.0]), torch.tensor([10.0, 30.0]), 2.2).camera_to_worlds
    used: dict[int, list[int]] = {0: [], 1: []}
    new = stochastic_conditioning(
        prior, views, cams, targets, steps=30, generator=torch.Generator().manual_seed(0), callback=lambda k, i, j: used[k].append(j)
    )
    assert new.shape == (2, 3, 4, 4)
    assert sorted(set(used[0])) == [0, 1] and sorted(set(used[1])) == [0, 1, 2]  # the first new view joins the pool
    pool_cams = torch.cat([cams, targets[:1]])
    assert len(prior.calls) == len(used[0]) + len(used[1]) == 60
    for call, k, j in zip(prior.calls, [0] * len(used[0]) + [1] * len(used[1]), used[0] + used[1]):
        assert torch.allclose(call.camera, relative_pose(pool_cams[j][None], targets[k : k + 1]), atol=1e-6)
    # a single view: 3DiM's sampler with eta 0 is the plain conditional DDIM sample
    from diffcore.samplers import sample

    rel = relative_pose(cams[:1], targets[:1])
    one = stochastic_conditioning(prior, views[:1], cams[:1], targets[:1], steps=20, eta=0.0, generator=torch.Generator().manual_seed(3))
    plain = sample(prior, 1, steps=20, sampler="ddim", cond=Cond(image=views[:1], camera=rel), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(one, plain.clamp(-1, 1), atol=1e-5)
    expected = views[:1] + 0.1 * rel[:, 0, 3].reshape(-1, 1, 1, 1)
    assert torch.allclose(one, expected, atol=0.05)
    with pytest.raises(DiffcoreError, match="view-conditioned"):
        from diffcore.priors import GaussianMixturePrior

        stochastic_conditioning(GaussianMixturePrior(torch.zeros(1, 2)), views, cams, targets, generator=torch.Generator())


def test_evaluation_scores_the_model_and_the_baselines_on_held_out_pairs():
    from diff_3d.views.evaluate import evaluate

    small = CameraSampler(size=8, radius=(2.0, 2.4), elevation=(0.0, 40.0), fov=(50.0, 50.0))
    result = evaluate(tiny_prior(), n=3, seed=2, steps=2, guidance=2.0, draws=2, cameras=small)
    held = pairs(3, split_generator(2, "held-out"), cameras=small)
    assert result["copy"]["psnr"] == pytest.approx(float(psnr(held.reference, held.target).mean()), abs=1e-3)
    assert result["copy"]["ssim"] == pytest.approx(float(ssim(held.reference, held.target).mean()), abs=1e-4)
    assert result["background"]["psnr"] == pytest.approx(float(psnr(torch.ones_like(held.target), held.target).mean()), abs=1e-3)
    assert math.isfinite(result["model"]["psnr"]) and result["model_mean_of_draws"]["draws"] == 2
