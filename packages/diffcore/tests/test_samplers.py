"""Every sampler against exact samples of a Gaussian mixture in 2, 8 and 80 dimensions.

The mixture is the 25-component grid of Cardoso et al. (2024), scaled to unit overall
standard deviation (like image data in [-1, 1]), so that the DDPM prior's starting noise
N(0, I) matches the true marginal at t = 1 and what is measured is the sampler's own error.
"""

import itertools

import pytest
import torch

import diffcore
from diffcore.errors import DiffcoreError
from diffcore.metrics import sliced_wasserstein
from diffcore.priors import GaussianMixturePrior
from diffcore.samplers import SAMPLERS

N = 2000
STEPS = (5, 10, 100)


def grid_mixture(d: int, seed: int = 0) -> GaussianMixturePrior:
    g = torch.Generator().manual_seed(seed)
    ij = torch.tensor(list(itertools.product(range(-2, 3), repeat=2)), dtype=torch.float64)
    means = (-8.0 * ij).repeat(1, d // 2)
    weights = torch.randn(25, generator=g, dtype=torch.float64) ** 2
    scale = (64.0 * 2 + 1) ** 0.5  # overall std per coordinate
    return GaussianMixturePrior(means / scale, weights, torch.full((25, d), 1 / scale**2))


_cache: dict = {}


def _setup(d):
    if d not in _cache:
        prior = grid_mixture(d)
        exact = [prior.sample(N, torch.Generator().manual_seed(100 + i)) for i in range(7)]
        dirs = torch.Generator().manual_seed(7)
        floor = (
            sum(
                sliced_wasserstein(exact[1 + 2 * i], exact[2 + 2 * i], n_dirs=200, generator=torch.Generator().manual_seed(i))
                for i in range(3)
            )
            / 3
        )
        _cache[d] = (prior, exact[0], float(floor), dirs)
    return _cache[d]


@pytest.mark.parametrize("d", [2, 8, 80])
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_sampler_converges_to_exact_samples(sampler, d):
    prior, reference, floor, _ = _setup(d)
    dists = []
    for steps in STEPS:
        x = diffcore.sample(prior, N, steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(1))
        dists.append(float(sliced_wasserstein(x, reference, n_dirs=200, generator=torch.Generator().manual_seed(7))))
    assert dists[0] > dists[1] > dists[2], f"{sampler} d={d}: SW does not fall with steps {STEPS}: {dists}"
    assert dists[2] <= 3 * floor, f"{sampler} d={d}: SW at 100 steps {dists[2]:.4f} > 3 x floor {floor:.4f}"


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_same_seed_same_samples(sampler):
    prior = grid_mixture(2)
    kw = {"eta": 0.5} if sampler == "ddim" else {"s_churn": 5.0} if sampler in ("euler", "heun") else {}
    a = diffcore.sample(prior, 16, steps=8, sampler=sampler, generator=torch.Generator().manual_seed(3), **kw)
    b = diffcore.sample(prior, 16, steps=8, sampler=sampler, generator=torch.Generator().manual_seed(3), **kw)
    c = diffcore.sample(prior, 16, steps=8, sampler=sampler, generator=torch.Generator().manual_seed(4), **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_euler_is_ddim_with_eta_zero():
    prior = grid_mixture(8)
    a = diffcore.sample(prior, 64, steps=12, sampler="euler", generator=torch.Generator().manual_seed(0))
    b = diffcore.sample(prior, 64, steps=12, sampler="ddim", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_ddim_eta_one_is_ancestral_in_distribution():
    prior = grid_mixture(2)
    ref = prior.sample(N, torch.Generator().manual_seed(9))
    x = diffcore.sample(prior, N, steps=100, sampler="ddim", eta=1.0, generator=torch.Generator().manual_seed(2))
    y = diffcore.sample(prior, N, steps=100, sampler="ddpm", generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(0)
    assert (
        float(sliced_wasserstein(x, ref, n_dirs=100, generator=g))
        < 2 * float(sliced_wasserstein(y, ref, n_dirs=100, generator=torch.Generator().manual_seed(0))) + 0.02
    )


def test_heun_is_more_accurate_than_euler_at_few_steps():
    prior, reference, _, _ = _setup(2)
    sw = {}
    for s in ("euler", "heun"):
        x = diffcore.sample(prior, N, steps=10, sampler=s, generator=torch.Generator().manual_seed(1))
        sw[s] = float(sliced_wasserstein(x, reference, n_dirs=200, generator=torch.Generator().manual_seed(7)))
    assert sw["heun"] < sw["euler"]


def test_callback_and_progress():
    prior = grid_mixture(2)
    seen = []
    diffcore.sample(prior, 4, steps=7, sampler="dpm++2m", callback=lambda i, t, x, pred: seen.append(i))
    assert seen == list(range(7))
    x = diffcore.sample(prior, 4, steps=3, progress=True, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 2)


class _Doubling:
    """A toy latent: decode doubles."""

    def encode(self, images):
        return images / 2

    def decode(self, latents):
        return latents * 2


def test_latent_priors_are_decoded():
    prior = grid_mixture(2)
    prior.latent = _Doubling()
    z = diffcore.sample(prior, 4, steps=3, decode=False, generator=torch.Generator().manual_seed(0))
    x = diffcore.sample(prior, 4, steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, 2 * z)


def test_bad_input():
    prior = grid_mixture(2)
    with pytest.raises(DiffcoreError, match="did you mean 'ddim'|Did you mean 'ddim'"):
        diffcore.sample(prior, 4, steps=3, sampler="dddim")
    with pytest.raises(DiffcoreError, match="positive integer"):
        diffcore.sample(prior, 0, steps=3)
    with pytest.raises(DiffcoreError, match="does not accept labels"):
        diffcore.sample(prior, 2, steps=3, cond=diffcore.Cond(labels=torch.tensor([1, 2])))
    with pytest.raises(DiffcoreError, match="does not take option"):
        diffcore.sample(prior, 2, steps=3, sampler="ddpm", eta=0.5)
