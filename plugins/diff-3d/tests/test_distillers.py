"""SDS, SJC and VSD against hand computations with exact Gaussian priors; the loss convention; guidance; annealing."""

import math

import pytest
import torch

import diffcore
from diff_3d.cameras import CameraSampler
from diff_3d.distill import distill
from diff_3d.distillers import SDS, SJC, VSD
from diff_3d.distillers.base import NoiseLevels, predict_guided, to_prior_space
from diff_3d.representations import ImageRepresentation
from diffcore.errors import DiffcoreError
from diffcore.priors import Guided
from diffcore.protocols import Cond, Distiller, LossDistiller
from diffcore.testing import save_tiny_stable_diffusion, save_tiny_unet_pipeline

SHAPE = (3, 4, 4)


def gaussian(mean=0.0, std=1.0):
    d = math.prod(SHAPE)
    return diffcore.priors.GaussianPrior(torch.full((d,), mean), torch.full((d,), std**2), shape=SHAPE)


def images(seed=0, n=2):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed)).mul(2).sub(1).requires_grad_(True)


@pytest.mark.parametrize("weighting", ["sds", "uniform", "fantasia3d"])
def test_sds_gradient_is_w_times_eps_hat_minus_eps(weighting):
    prior, x = gaussian(0.3, 0.5), images()
    sds = SDS(weighting=weighting)
    out = sds.loss(prior, x, None, step=3, total_steps=10, generator=torch.Generator().manual_seed(7))
    out.loss.backward()
    # the same draws by hand: the times, then the noise
    g = torch.Generator().manual_seed(7)
    t = NoiseLevels().draw(prior.schedule, 2, 3, 10, g)
    eps = torch.randn(x.shape, generator=g)
    alpha, sigma = (c(t).float().reshape(-1, 1, 1, 1) for c in (prior.schedule.alpha, prior.schedule.sigma))
    eps_hat = prior.predict(alpha * x.detach() + sigma * eps, t).eps
    w = {"sds": sigma**2, "uniform": torch.ones_like(sigma), "fantasia3d": alpha * sigma**2}[weighting]
    expected = w * (eps_hat - eps)
    assert torch.allclose(x.grad, expected / 2, atol=1e-5)  # d loss / d images = g / N
    assert torch.allclose(out.logs["t"], t.float()) and float(out.loss.detach()) == pytest.approx(
        0.5 * float((expected**2).sum()) / 2, rel=1e-4
    )
    assert torch.allclose(
        sds.grad(prior, x.detach(), None, 3, total_steps=10, generator=torch.Generator().manual_seed(7)), expected, atol=1e-5
    )


def test_sjc_with_one_draw_is_uniform_sds_and_paas_averages_draws():
    prior, x = gaussian(-0.2, 0.4), images(1)
    sjc = SJC(draws=1).grad(prior, x, None, 0, total_steps=5, generator=torch.Generator().manual_seed(3))
    sds = SDS(weighting="uniform").grad(prior, x, None, 0, total_steps=5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(sjc, sds, atol=1e-4)
    # K draws: the mean of -(D(z + sigma n_k) - z) / sigma over the draws (PAAS)
    g = torch.Generator().manual_seed(4)
    out = SJC(draws=3).grad(prior, x, None, 0, total_steps=5, generator=torch.Generator().manual_seed(4))
    t = NoiseLevels().draw(prior.schedule, 2, 0, 5, g)
    noise = torch.randn(3, *x.shape, generator=g)
    alpha, sigma = (c(t).float().reshape(-1, 1, 1, 1) for c in (prior.schedule.alpha, prior.schedule.sigma))
    d = torch.stack([prior.predict(alpha * x + sigma * noise[k], t).x0 for k in range(3)])
    assert torch.allclose(out, -((d - x) / (sigma / alpha)).mean(0), atol=1e-4)


def test_vsd_learns_the_renders_and_pushes_as_sds_does():
    prior, x = gaussian(0.5, 0.1), images(2, n=1)
    vsd = VSD(lr=1e-2)
    cam = CameraSampler(size=4).sample(1, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    vsd.loss(prior, x, None, step=0, total_steps=10, generator=g, camera=cam)
    before = [p.detach().clone() for p in vsd.parameters()]
    assert before and all(float(p.abs().sum()) == 0 for p in vsd.model.out.parameters())  # the network's last layer starts at zero
    for step in range(20):
        vsd.update(prior, x, None, step=step, total_steps=20, generator=g, camera=cam)
    assert any(not torch.equal(a, b) for a, b in zip(before, vsd.parameters()))
    later = vsd.loss(prior, x, None, step=19, total_steps=20, generator=g, camera=cam)
    later.loss.backward()
    sds = SDS().grad(prior, x.detach(), None, 0, generator=torch.Generator().manual_seed(5))
    assert float(x.grad.flatten() @ sds.flatten()) > 0  # towards the prior, as SDS
    with pytest.raises(DiffcoreError, match="one VSD per prior"):
        vsd.loss(gaussian(), x, None, step=0, total_steps=1, generator=g)


def test_the_residual_denoiser_is_the_one_sample_estimate_at_low_noise():
    """rho = c_skip (x_t / alpha - x0_prior) + c_out F: at the start (F = 0) eps_phi is eps_prior - c_skip (alpha / sigma)
    (x_t / alpha - x0_prior)."""
    prior, x = gaussian(0.2, 0.3), images(3, n=1)
    vsd = VSD()
    vsd.second_model(prior)
    t = torch.tensor([0.05], dtype=torch.float64)
    alpha, sigma = (c(t).float().reshape(-1, 1, 1, 1) for c in (prior.schedule.alpha, prior.schedule.sigma))
    x_t = alpha * x.detach() + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    pred = prior.predict(x_t, t)
    s2 = (sigma / alpha) ** 2
    skip = 0.25 / (s2 + 0.25)
    expected = pred.eps - skip * (alpha / sigma) * (x_t / alpha - pred.x0)
    assert torch.allclose(vsd.model.eps(x_t, t, None, None), expected, atol=1e-4)


def test_vsd_puts_lora_and_a_camera_embedding_on_a_network_and_takes_them_off():
    with __import__("tempfile").TemporaryDirectory() as folder:
        prior = diffcore.create("prior", "diffusers", path=str(save_tiny_unet_pipeline(folder, clip_sample=False)))
    x = torch.rand(1, *prior.sample_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    probe = torch.randn(1, *prior.sample_shape, generator=torch.Generator().manual_seed(1))
    base = prior.predict(probe, 0.5).eps
    vsd = VSD(lr=1e-2, lora_rank=2)
    cam = CameraSampler(size=8).sample(1, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    assert float(vsd.loss(prior, x, None, step=0, total_steps=4, generator=g, camera=cam).loss.detach()) == 0.0
    for step in range(3):
        vsd.update(prior, x, None, step=step, total_steps=4, generator=g, camera=cam)
    embedding = vsd.model.embedding
    assert embedding is not None and not prior.network.time_embedding._forward_hooks  # the hook lives only during a call
    with vsd.model.pretrained():
        assert torch.equal(prior.predict(probe, 0.5).eps, base)  # LoRA off: the pretrained network
    assert not torch.equal(prior.predict(probe, 0.5).eps, base)
    assert float(vsd.loss(prior, x, None, step=3, total_steps=4, generator=g, camera=cam).loss.detach()) > 0


def test_guidance_follows_diffusers_convention():
    with __import__("tempfile").TemporaryDirectory() as folder:
        sd = diffcore.create("prior", "stable-diffusion", path=str(save_tiny_stable_diffusion(folder)))
    x = torch.randn(2, *sd.sample_shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.3, 0.6], dtype=torch.float64)
    text = predict_guided(sd, x, t, Cond(text="a photo of a cat"), 4.0)  # a prompt: two calls
    embedded = Guided(sd, 4.0, Cond(text=sd.encode_text("a photo of a cat"))).predict(x, t)
    assert torch.allclose(text.eps, embedded.eps, atol=1e-5) and torch.allclose(text.x0, embedded.x0, atol=1e-4)
    assert torch.equal(
        predict_guided(sd, x, t, Cond(text=sd.encode_text("a cat")), 1.0).eps, sd.predict(x, t, Cond(text=sd.encode_text("a cat"))).eps
    )
    with pytest.raises(DiffcoreError, match="needs the prior's unconditional model"):
        predict_guided(
            diffcore.create("prior", "analytic-scene", size=4),
            torch.zeros(1, 3, 4, 4),
            t[:1],
            Cond(camera=torch.eye(4)[None], labels=torch.tensor([0])),
            3.0,
        )


def test_renders_reach_a_latent_prior_through_its_encoder():
    with __import__("tempfile").TemporaryDirectory() as folder:
        sd = diffcore.create("prior", "stable-diffusion", path=str(save_tiny_stable_diffusion(folder)))
    renders = torch.rand(1, 3, 24, 24).requires_grad_(True)
    z = to_prior_space(sd, renders)
    assert z.shape == (1, *sd.sample_shape)
    out = SDS(guidance_scale=3.0).loss(sd, renders, Cond(text="a cat"), step=0, total_steps=1, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert renders.grad is not None and bool(renders.grad.abs().sum() > 0)
    grey = to_prior_space(diffcore.priors.GaussianPrior(torch.zeros(16), shape=(1, 4, 4)), torch.ones(1, 3, 8, 8))
    assert grey.shape == (1, 1, 4, 4) and torch.allclose(grey, torch.ones(1, 1, 4, 4))


def test_annealing_and_the_training_grid():
    levels = NoiseLevels(0.02, 0.98, t_end=0.5)
    assert levels.bounds(0, 11) == (0.02, 0.98) and levels.bounds(10, 11) == (0.02, 0.5)
    assert levels.bounds(5, 11)[1] == pytest.approx(0.74)
    assert NoiseLevels(0.02, 0.98, t_end=0.5, anneal="sqrt").bounds(5, 11)[1] == pytest.approx(0.98 - 0.48 * math.sqrt(0.5))
    t = levels.draw(diffcore.schedules.DiscreteSchedule.linear(1000), 500, 10, 11, torch.Generator().manual_seed(0))
    assert torch.equal(t * 1000, (t * 1000).round()) and float(t.max()) <= 0.5 and float(t.min()) >= 0.02
    with pytest.raises(DiffcoreError, match="unknown annealing"):
        NoiseLevels(anneal="cosine")
    with pytest.raises(DiffcoreError, match="unknown weighting"):
        SDS(weighting="dreamtime")


def test_a_kernel_0_1_distiller_still_trains():
    class OnlyGrad:
        def grad(self, prior, image, cond, step):
            return image - 0.5  # pulls every pixel to 0.5

    assert isinstance(OnlyGrad(), Distiller) and not isinstance(OnlyGrad(), LossDistiller) and isinstance(SDS(), LossDistiller)
    image = ImageRepresentation(size=4)
    distill(gaussian(), image, OnlyGrad(), steps=150, lr=0.05, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(image.render(None).detach(), torch.full((1, 3, 4, 4), 0.5), atol=0.02)


@pytest.mark.parametrize("name", ["sds", "sjc", "vsd"])
def test_every_distiller_takes_a_composed_prior_by_spec(name):
    if "collage" not in {c.name for c in diffcore.available("prior")}:
        pytest.skip("diff-collage is not installed")
    prior = diffcore.create("prior", "collage:base=zoo:patches,graph=chain,windows=2")  # a wrapper, no network of its own
    channels, height, width = prior.image_shape
    image = ImageRepresentation(channels=channels, height=height, width=width, init_std=0.5)
    record = distill(prior, image, diffcore.create("distiller", name), steps=2, lr=0.01, generator=torch.Generator().manual_seed(0))
    assert len(record.losses) == 2 and all(math.isfinite(v) for v in record.losses)
    if name != "vsd":  # VSD's first gradient is zero by design: its second model starts as the prior
        assert record.losses[0] > 0
