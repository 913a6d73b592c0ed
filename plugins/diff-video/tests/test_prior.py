"""SpaceTimePrior and PerFrame: the video priors of an inflated UNet and of an image prior on each frame."""

from __future__ import annotations

import pytest
import torch

import diffcore
from diff_video.inflate import inflate
from diff_video.per_frame import PerFrame
from diff_video.prior import SpaceTimePrior, image_prior
from diffcore import Cond
from diffcore.adapters.video import is_video_prior
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.testing import check_prior, save_tiny_unet_pipeline
from diffcore.training import denoising_loss, train_only


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    folder = save_tiny_unet_pipeline(tmp_path_factory.mktemp("tiny") / "unet", channels=1, seed=2, clip_sample=False)
    return diffcore.create("prior", "diffusers", path=folder)


def _video(image, frames=4, **options):
    return SpaceTimePrior(inflate(image.network), image.scheduler_config, num_frames=frames, **options)


def _perturbed(prior, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in prior.network.named_parameters():
            if "temporal" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    return prior


def test_contract(image):
    prior = _perturbed(_video(image))
    assert prior.sample_shape == (4, 1, 8, 8) and is_video_prior(prior)
    check_prior(prior)
    check_prior(prior.with_frames(7))


def test_starts_as_the_image_prior_on_every_frame(image):
    video = _video(image)
    baseline = PerFrame(image, 4)
    x = torch.randn(3, 4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for t in (0.9, torch.tensor([0.8, 0.5, 0.1], dtype=torch.float64)):
        ours, ref = video.predict(x, t), baseline.predict(x, t)
        assert float((ours.eps - ref.eps).abs().max()) <= 1e-5 and float((ours.x0 - ref.x0).abs().max()) <= 1e-4
    per_frame_t = torch.rand(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.9 + 0.05
    ours = video.predict(x, per_frame_t)
    ref = image.predict(x.flatten(0, 1), per_frame_t.flatten())
    assert float((ours.eps.flatten(0, 1) - ref.eps).abs().max()) <= 1e-5


def test_time_per_frame_matches_time_per_video(image):
    prior = _perturbed(_video(image))
    x = torch.randn(2, 4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0.7, 0.3], dtype=torch.float64)
    by_video = prior.predict(x, t)
    by_frame = prior.predict(x, t[:, None].expand(2, 4))
    assert torch.equal(by_video.eps, by_frame.eps) and torch.equal(by_video.x0, by_frame.x0)
    # frames at different noise levels change each other's predictions through the temporal layers
    mixed = t[:, None].expand(2, 4).clone()
    mixed[:, 0] = 0.05
    assert float((prior.predict(x, mixed).eps[:, 1:] - by_video.eps[:, 1:]).abs().max()) > 1e-5


def test_image_prior_is_the_frames_alone(image):
    prior = _perturbed(_video(image))
    alone = image_prior(prior)
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(alone.predict(x, 0.4).eps, image.predict(x, 0.4).eps)
    assert alone.network is prior.network and alone.sample_shape == (1, 8, 8)


def test_channels_last_layout_gives_the_same_values(image):
    plain = _perturbed(_video(image))
    fast = SpaceTimePrior(plain.network, image.scheduler_config, num_frames=4, channels_last=True)  # converts the shared 2-D convolutions
    x = torch.randn(2, 4, 1, 8, 8, generator=torch.Generator().manual_seed(8))
    assert torch.allclose(fast.predict(x, 0.3).eps, plain.predict(x, 0.3).eps, atol=1e-5)
    alone = image_prior(fast)
    assert alone.channels_last and torch.allclose(alone.predict(x[:, 0], 0.3).eps, image.predict(x[:, 0], 0.3).eps, atol=1e-5)


def test_per_frame_wrapper(image):
    video = PerFrame(image, 3)
    assert video.sample_shape == (3, 1, 8, 8) and video.image_shape == (3, 1, 8, 8) and video.latent is None
    check_prior(video)
    x = torch.randn(2, 3, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.3, 0.4]], dtype=torch.float64)
    ours = video.predict(x, t)
    assert torch.equal(ours.eps.flatten(0, 1), image.predict(x.flatten(0, 1), t.flatten()).eps)
    assert video.with_frames(5).sample_shape == (5, 1, 8, 8)
    with pytest.raises(DiffcoreError, match="expected a scalar, \\(2,\\) or \\(2, 3\\)"):
        video.predict(x, torch.zeros(4))
    with pytest.raises(ShapeError, match="expected videos"):
        video.predict(x[0], 0.5)


def test_per_frame_repeats_labels_per_video(tmp_path):
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DModel(
            sample_size=8,
            in_channels=1,
            out_channels=1,
            block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=8,
            layers_per_block=1,
            num_class_embeds=3,
        )
    from diffcore.adapters.diffusers_prior import DiffusersUNetPrior

    image = DiffusersUNetPrior(unet, {"num_train_timesteps": 1000})
    video = PerFrame(image, 2)
    x = torch.randn(2, 2, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    ours = video.predict(x, 0.5, Cond(labels=torch.tensor([0, 2])))
    ref = image.predict(x.flatten(0, 1), 0.5, Cond(labels=torch.tensor([0, 0, 2, 2])))
    assert torch.equal(ours.eps.flatten(0, 1), ref.eps)
    with pytest.raises(ShapeError, match="one per video"):
        video.predict(x, 0.5, Cond(labels=torch.tensor([0, 1, 2])))
    labelled = SpaceTimePrior(inflate(unet), {"num_train_timesteps": 1000}, num_frames=2, null_label=2)
    assert torch.allclose(labelled.predict(x, 0.5, Cond(labels=torch.tensor([0, 2]))).eps, ours.eps, atol=1e-5)
    with pytest.raises(DiffcoreError, match="one class index per video"):
        labelled.predict(x, 0.5)


def test_trains_temporal_layers_only(image):
    prior = _video(image)
    chosen = train_only(prior, "temporal")
    before = {n: p.detach().clone() for n, p in prior.network.named_parameters()}
    opt = torch.optim.SGD([p for _, p in chosen], lr=0.1)
    x0 = torch.randn(2, 4, 1, 8, 8, generator=torch.Generator().manual_seed(6)).clamp(-1, 1)
    g = torch.Generator().manual_seed(7)
    for _ in range(2):
        opt.zero_grad()
        denoising_loss(prior, x0, generator=g).backward()
        opt.step()
    changed = {n for n, p in prior.network.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("temporal" in n for n in changed)


def test_bad_input(image):
    prior = _video(image)
    with pytest.raises(ShapeError, match="expected videos \\(N, F, 1, H, W\\)"):
        prior.predict(torch.zeros(2, 1, 8, 8), 0.5)
    with pytest.raises(ShapeError, match="at most 64 frames"):
        prior.with_frames(65)
    with pytest.raises(DiffcoreError, match="needs an inflated network"):
        SpaceTimePrior(image.network, image.scheduler_config)
