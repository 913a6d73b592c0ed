"""The exact view-conditioned prior: a Gaussian around the scene's render, exact at every t."""

import pytest
import torch

import diffcore
from diff_3d.cameras import orbit_cameras
from diffcore.errors import DiffcoreError
from diffcore.priors import GaussianPrior
from diffcore.protocols import Cond, Prior
from diffcore.testing import check_prior


def test_it_is_the_kernels_gaussian_with_the_render_as_mean():
    prior = diffcore.create("prior", "analytic-scene", size=8, std=0.05)
    cams = orbit_cameras(torch.tensor([15.0, 200.0]), torch.tensor([10.0, 30.0]), 2.5, fov=prior.fov, size=8)
    means = prior.mean(cams.camera_to_worlds)
    x = torch.randn(2, *prior.sample_shape, generator=torch.Generator().manual_seed(0))
    for t in (0.02, 0.3, 0.7, 0.98):
        pred = prior.predict(x, t, Cond(camera=cams.camera_to_worlds))
        for i in range(2):
            oracle = GaussianPrior(means[i].flatten(), torch.full((means[i].numel(),), 0.05**2), shape=prior.sample_shape)
            exact = oracle.predict(x[i : i + 1], t)
            assert torch.allclose(pred.x0[i : i + 1], exact.x0, atol=1e-5) and torch.allclose(pred.eps[i : i + 1], exact.eps, atol=1e-5)


def test_it_satisfies_the_prior_contract():
    prior = diffcore.create("prior", "analytic-scene", size=8)
    assert isinstance(prior, Prior) and prior.accepts == {"camera"} and prior.null_cond is None
    cams = orbit_cameras(torch.tensor([0.0, 90.0]), 20.0, 2.5, fov=prior.fov, size=8)
    check_prior(prior, cond=Cond(camera=cams.camera_to_worlds))


def test_it_needs_a_camera():
    prior = diffcore.create("prior", "analytic-scene", size=8)
    x = torch.zeros(1, *prior.sample_shape)
    with pytest.raises(DiffcoreError, match=r"view-conditioned: pass cond=Cond\(camera="):
        prior.predict(x, 0.5)
    with pytest.raises(DiffcoreError, match="does not accept labels conditioning"):
        prior.predict(x, 0.5, Cond(labels=torch.tensor([1])))
    with pytest.raises(DiffcoreError, match=r"expected camera-to-world matrices \(N, 3, 4\)"):
        prior.predict(x, 0.5, Cond(camera=torch.zeros(1, 4)))
