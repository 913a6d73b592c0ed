"""The Gaussian-mixture oracle checked against brute force: autograd scores, grid integrals."""

import pytest
import torch

import diffcore.priors.gmm as gmm_mod
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.priors import GaussianMixturePrior, GaussianPrior
from diffcore.schedules import EDMSchedule, VPSchedule


def _random_spd(k, d, g):
    a = torch.randn(k, d, d, generator=g, dtype=torch.float64)
    return a @ a.transpose(1, 2) / d + 0.2 * torch.eye(d, dtype=torch.float64)


def _mixtures(d=3):
    g = torch.Generator().manual_seed(0)
    means = 3 * torch.randn(4, d, generator=g, dtype=torch.float64)
    w = torch.rand(4, generator=g, dtype=torch.float64) + 0.1
    shared = _random_spd(1, d, g).expand(4, d, d)
    return {
        "identity": GaussianMixturePrior(means, w),
        "diagonal": GaussianMixturePrior(means, w, torch.rand(4, d, generator=g, dtype=torch.float64) + 0.3),
        "full": GaussianMixturePrior(means, w, _random_spd(4, d, g)),
        "shared": GaussianMixturePrior(means, w, shared, schedule=VPSchedule()),
        "edm": GaussianMixturePrior(means, w, _random_spd(4, d, g), schedule=EDMSchedule()),
    }


def _moments(p):
    w = p.weights
    mean = w @ p.means
    second = (w[:, None, None] * (p.covariances() + p.means[:, :, None] * p.means[:, None, :])).sum(0)
    return mean, second - mean[:, None] * mean[None, :]


@pytest.mark.parametrize("kind", ["identity", "diagonal", "full", "shared", "edm"])
@pytest.mark.parametrize("t", [0.02, 0.3, 0.9])
def test_eps_is_minus_sigma_times_autograd_score(kind, t):
    p = _mixtures()[kind]
    x = (3 * torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)).requires_grad_(True)
    logp = p.log_prob(x, t).sum()
    (score,) = torch.autograd.grad(logp, x)
    pred = p.predict(x.detach(), t)
    tt = torch.tensor(t, dtype=torch.float64)
    a, s = p.schedule.alpha(tt), p.schedule.sigma(tt)
    torch.testing.assert_close(pred.eps, -s * score, rtol=1e-6, atol=1e-8)
    # Tweedie: x0 = (x + sigma^2 score) / alpha, and the pair is consistent
    torch.testing.assert_close(pred.x0, (x.detach() + s**2 * score) / a, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a * pred.x0 + s * pred.eps, x.detach(), rtol=1e-8, atol=1e-8)


def test_per_sample_times_and_float32():
    p = _mixtures()["full"]
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0.1, 0.5, 0.7, 0.95])
    pred = p.predict(x, t)
    assert pred.x0.dtype == torch.float32
    for i in range(4):
        one = p.predict(x[i : i + 1], float(t[i]))
        torch.testing.assert_close(pred.x0[i], one.x0[0])


def test_chunking_does_not_change_results(monkeypatch):
    p = _mixtures()["full"]
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    whole = p.predict(x, 0.4)
    monkeypatch.setattr(gmm_mod, "_CHUNK", 24)
    torch.testing.assert_close(p.predict(x, 0.4).x0, whole.x0)


def test_eps_is_finite_at_t0():
    p = _mixtures()["diagonal"]
    pred = p.predict(torch.randn(3, 3, dtype=torch.float64), 0.0)
    assert torch.isfinite(pred.eps).all() and torch.isfinite(pred.x0).all()


def _grid_2d(lim=12.0, n=401):
    u = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(u, u, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1), float(u[1] - u[0]) ** 2


def test_log_prob_integrates_to_one():
    g = torch.Generator().manual_seed(4)
    p = GaussianMixturePrior(torch.randn(3, 2, generator=g, dtype=torch.float64) * 2, [0.2, 0.3, 0.5], _random_spd(3, 2, g))
    pts, area = _grid_2d()
    assert float(p.log_prob(pts).exp().sum() * area) == pytest.approx(1.0, abs=1e-6)
    assert float(p.log_prob(pts, 0.5).exp().sum() * area) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("sigma_y", [0.3, 1.0])
def test_posterior_matches_bayes_rule_on_a_grid(sigma_y):
    g = torch.Generator().manual_seed(5)
    p = GaussianMixturePrior(torch.randn(4, 2, generator=g, dtype=torch.float64) * 3, [0.1, 0.2, 0.3, 0.4], _random_spd(4, 2, g))
    A = torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    y = torch.tensor([1.2], dtype=torch.float64)
    post = p.posterior(A, y, sigma_y)
    pts, area = _grid_2d()
    log_unnorm = p.log_prob(pts) - 0.5 * ((pts @ A.T - y) ** 2).sum(1) / sigma_y**2
    dens = torch.softmax(log_unnorm, 0)
    mean = dens @ pts
    cov = (dens[:, None] * (pts - mean)).T @ (pts - mean)
    m, c = _moments(post)
    torch.testing.assert_close(m, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, cov, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(post.log_prob(pts).exp() * area, dens, atol=1e-7, rtol=1e-4)


def test_noiseless_posterior_lies_on_the_constraint():
    g = torch.Generator().manual_seed(6)
    p = GaussianMixturePrior(torch.randn(5, 4, generator=g, dtype=torch.float64) * 3)
    A = torch.randn(2, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0.5, -1.0], dtype=torch.float64)
    xs = p.posterior(A, y, 0.0).sample(100, torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(xs @ A.T, y.expand(100, 2), atol=1e-6, rtol=0)


def test_sample_moments():
    p = _mixtures()["full"]
    xs = p.sample(40000, torch.Generator().manual_seed(7), dtype=torch.float64)
    m, c = _moments(p)
    se = (c.diagonal() / 40000).sqrt()
    assert bool(((xs.mean(0) - m).abs() < 5 * se).all())
    torch.testing.assert_close(torch.cov(xs.T), c, rtol=0.05, atol=0.05 * float(c.diagonal().max()))


def test_sampling_is_reproducible():
    p = _mixtures()["diagonal"]
    a = p.sample(10, torch.Generator().manual_seed(3))
    b = p.sample(10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_marginal_blocks():
    p = _mixtures()["full"]
    mg = p.marginal([2, 0])
    torch.testing.assert_close(mg.means, p.means[:, [2, 0]])
    torch.testing.assert_close(mg.covariances(), p.covariances()[:, [2, 0]][:, :, [2, 0]])
    assert mg.sample_shape == (2,)


def test_gaussian_prior_is_linear_and_exact():
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    p = GaussianPrior([1.0, -1.0], cov)
    x = torch.randn(3, 2, dtype=torch.float64)
    t = torch.tensor(0.5, dtype=torch.float64)
    a, s = p.schedule.alpha(t), p.schedule.sigma(t)
    expect = (
        torch.tensor([1.0, -1.0], dtype=torch.float64)
        + (
            a
            * cov
            @ torch.linalg.inv(a * a * cov + s * s * torch.eye(2, dtype=torch.float64))
            @ (x - a * torch.tensor([1.0, -1.0], dtype=torch.float64)).T
        ).T
    )
    torch.testing.assert_close(p.predict(x, 0.5).x0, expect)


def test_image_shaped_mixture():
    p = GaussianMixturePrior(torch.zeros(2, 16), shape=(1, 4, 4))
    pred = p.predict(torch.randn(3, 1, 4, 4), 0.5)
    assert pred.x0.shape == (3, 1, 4, 4)
    assert p.sample(2).shape == (2, 1, 4, 4)


def test_bad_input_is_explained():
    with pytest.raises(ShapeError, match=r"expected \(K, d\)"):
        GaussianMixturePrior(torch.zeros(3))
    with pytest.raises(ShapeError, match=r"expected \(2,\)"):
        GaussianMixturePrior(torch.zeros(2, 3), weights=[1.0, 2.0, 3.0])
    with pytest.raises(DiffcoreError, match="non-negative"):
        GaussianMixturePrior(torch.zeros(2, 3), weights=[1.0, -2.0])
    with pytest.raises(ShapeError, match="diagonal or"):
        GaussianMixturePrior(torch.zeros(2, 3), covs=torch.ones(3, 3))
    with pytest.raises(DiffcoreError, match="semi-definite"):
        GaussianMixturePrior(torch.zeros(1, 2), covs=-torch.eye(2)[None])
    p = GaussianMixturePrior(torch.zeros(2, 3))
    with pytest.raises(ShapeError, match=r"expected \(N, 3\)"):
        p.predict(torch.zeros(4, 2), 0.5)
    with pytest.raises(ShapeError, match=r"expected \(m, 3\)"):
        p.posterior(torch.zeros(1, 2), torch.zeros(1), 0.1)
    with pytest.raises(DiffcoreError, match="sigma_y"):
        p.posterior(torch.zeros(1, 3), torch.zeros(1), -1.0)
    with pytest.raises(DiffcoreError, match="singular"):
        p.posterior(torch.zeros(1, 3), torch.zeros(1), 0.0)
