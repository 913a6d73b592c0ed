"""diffcore.training.denoising_loss and conversions.training_target: exact oracles and diffusers as a peer."""

from __future__ import annotations

import pytest
import torch

import diffcore
from diffcore import conversions
from diffcore.errors import DiffcoreError
from diffcore.priors import GaussianPrior
from diffcore.protocols import Prediction, Trainable
from diffcore.schedules import DiscreteSchedule, VPSchedule
from diffcore.testing import save_tiny_unet_pipeline
from diffcore.training import denoising_loss, min_snr_weights, train_only

TYPES = ("epsilon", "v_prediction", "sample")


class GaussianDenoiser:
    """A trainable-contract prior whose "network" is the exact denoiser of a Gaussian prior.

    Its output in each parameterisation is written out by hand here (v = alpha eps - sigma x0),
    not taken from diffcore.conversions, so the loss is checked against an independent oracle.
    """

    def __init__(self, gaussian: GaussianPrior, prediction_type: str, outputs: str | None = None):
        self.gaussian, self.schedule, self.prediction_type = gaussian, gaussian.schedule, prediction_type
        self.outputs = outputs or prediction_type  # what network_output gives (a test may make it lie)
        self.network = torch.nn.Module()
        self.network.gain = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def network_output(self, x_t, t, cond=None):
        pred = self.gaussian.predict(x_t, t)
        alpha = self.schedule.alpha(t).to(x_t)[:, None]
        sigma = self.schedule.sigma(t).to(x_t)[:, None]
        out = {"epsilon": pred.eps, "sample": pred.x0, "v_prediction": alpha * pred.eps - sigma * pred.x0}[self.outputs]
        return out * self.network.gain


@pytest.mark.parametrize("prediction_type", TYPES)
def test_training_target_inverts_the_predictions_conversions(prediction_type):
    """The target read back through Prediction.from_* gives the x0 and eps that made x_t, for a non-VP (alpha, sigma)."""
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    alpha, sigma = torch.rand(5, generator=g, dtype=torch.float64) + 0.2, torch.rand(5, generator=g, dtype=torch.float64) * 3 + 0.1
    x_t = conversions.expand(alpha, x0) * x0 + conversions.expand(sigma, x0) * eps
    target = conversions.training_target(prediction_type, x0, eps, alpha, sigma)
    back = {"epsilon": Prediction.from_eps, "v_prediction": Prediction.from_v, "sample": Prediction.from_x0}[prediction_type](
        x_t, target, alpha, sigma
    )
    torch.testing.assert_close(back.x0, x0)
    torch.testing.assert_close(back.eps, eps)
    with pytest.raises(DiffcoreError, match="prediction_type"):
        conversions.training_target("score", x0, eps, alpha, sigma)


@pytest.mark.parametrize("schedule", [DiscreteSchedule.linear(1000), VPSchedule()], ids=["discrete", "vp"])
@pytest.mark.parametrize("prediction_type", TYPES)
def test_the_loss_of_an_exact_denoiser_of_a_point_mass_is_zero(schedule, prediction_type):
    mean = [1.0, -2.0, 0.5, 3.0]
    oracle = GaussianDenoiser(GaussianPrior(mean=mean, cov=[0.0] * 4, schedule=schedule), prediction_type)
    assert isinstance(oracle, Trainable)
    x0 = torch.tensor(mean, dtype=torch.float64).repeat(256, 1)
    loss = denoising_loss(oracle, x0, generator=torch.Generator().manual_seed(0))
    assert float(loss.detach()) < 1e-18
    loss.backward()
    assert oracle.network.gain.grad is not None  # the loss reaches the network's parameters
    other = "epsilon" if prediction_type != "epsilon" else "sample"
    wrong = GaussianDenoiser(oracle.gaussian, prediction_type, outputs=other)  # outputs one parameterisation, claims another
    assert float(denoising_loss(wrong, x0, generator=torch.Generator().manual_seed(0)).detach()) > 0.1


def test_the_loss_of_an_exact_gaussian_denoiser_is_the_posterior_variance_of_the_noise():
    """Data N(0, s^2 I) at a fixed t: E|eps - E[eps|x_t]|^2 per entry is 1 - sigma^2 / (alpha^2 s^2 + sigma^2)."""
    s, d, n = 0.7, 8, 8192
    schedule = DiscreteSchedule.linear(1000)
    oracle = GaussianDenoiser(GaussianPrior(mean=[0.0] * d, cov=[s * s] * d, schedule=schedule), "epsilon")
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64) * s
    for t in (0.1, 0.5):
        a, sg = float(schedule.alpha(torch.tensor(t))), float(schedule.sigma(torch.tensor(t)))
        expected = 1 - sg**2 / (a * a * s * s + sg**2)
        loss = float(denoising_loss(oracle, x0, t=t, generator=g).detach())
        assert loss == pytest.approx(expected, rel=0.04)  # 8192 x 8 entries: 5 standard errors


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {pt: save_tiny_unet_pipeline(root / pt, prediction_type=pt) for pt in ("epsilon", "v_prediction")}


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_the_loss_matches_diffusers_add_noise_and_get_velocity(tiny_folders, prediction_type):
    """The same draws through diffusers' DDPMScheduler.add_noise (and get_velocity for v) give the same loss, bit for bit."""
    from diffusers import DDPMScheduler

    prior = diffcore.create("prior", "diffusers", path=str(tiny_folders[prediction_type]))
    scheduler = DDPMScheduler.from_pretrained(tiny_folders[prediction_type], subfolder="scheduler")
    x0 = torch.rand(4, *prior.sample_shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    loss = denoising_loss(prior, x0, generator=torch.Generator().manual_seed(3))

    g = torch.Generator().manual_seed(3)
    steps = torch.randint(1000, (4,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    x_t = scheduler.add_noise(x0, eps, steps)
    target = eps if prediction_type == "epsilon" else scheduler.get_velocity(x0, eps, steps)
    with torch.no_grad():
        out = prior.network(x_t, steps).sample
    assert torch.equal(loss.detach(), torch.nn.functional.mse_loss(out, target))


def test_gradients_reach_the_selected_parameters_only(tiny_folders):
    prior = diffcore.create("prior", "diffusers", path=str(tiny_folders["epsilon"]))
    chosen = dict(train_only(prior, "self-attention"))
    x0 = torch.zeros(2, *prior.sample_shape)
    denoising_loss(prior, x0, generator=torch.Generator().manual_seed(0)).backward()
    for name, p in prior.network.named_parameters():
        assert (p.grad is not None) == (name in chosen), name
    # predict stays free of parameter gradients
    out = prior.predict(torch.zeros(1, *prior.sample_shape), 0.5).eps
    assert not out.requires_grad


def test_weightings():
    schedule = DiscreteSchedule.linear(1000)
    oracle = GaussianDenoiser(GaussianPrior(mean=[0.0] * 4, schedule=schedule), "epsilon")
    x0 = torch.randn(64, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plain = denoising_loss(oracle, x0, generator=torch.Generator().manual_seed(5))
    ones = denoising_loss(oracle, x0, generator=torch.Generator().manual_seed(5), weighting=lambda a, s: torch.ones_like(a))
    huge = denoising_loss(oracle, x0, generator=torch.Generator().manual_seed(5), weighting="min-snr-1e9")  # min(SNR, gamma) / SNR = 1
    torch.testing.assert_close(ones, plain)
    torch.testing.assert_close(huge, plain)
    a, s = torch.tensor([0.99, 0.5]), torch.tensor([0.14, 0.87])
    snr = (a / s) ** 2
    torch.testing.assert_close(min_snr_weights(5.0, "epsilon", a, s), torch.minimum(snr, torch.tensor(5.0)) / snr)
    torch.testing.assert_close(min_snr_weights(5.0, "sample", a, s), torch.minimum(snr, torch.tensor(5.0)))
    with pytest.raises(DiffcoreError, match="weighting"):
        denoising_loss(oracle, x0, generator=torch.Generator(), weighting="snr")


def test_a_prior_without_the_contract_is_refused():
    with pytest.raises(DiffcoreError, match="not trainable: it lacks network, prediction_type, network_output"):
        denoising_loss(GaussianPrior(mean=[0.0]), torch.zeros(2, 1), generator=torch.Generator())
