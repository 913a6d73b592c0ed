"""DiffCollage against exact Gaussian oracles: a stationary AR(1) process (covariance rho^|i-j|) is
Markov, so a chain of its windows factorises exactly as a tree, and the window's exact marginal on
the overlap (``GaussianPrior.marginal``) is the exact separator."""

from __future__ import annotations

import pytest
import torch

import diffcore
from diff_collage import collage, graphs
from diffcore.samplers import ddim
from diffcore.samplers.grid import coefs

RHO, W, L = 0.9, 16, 64


def ar1(n: int, rho: float = RHO) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    return rho ** (i[:, None] - i[None]).abs()


@pytest.fixture(scope="module")
def window():
    return diffcore.priors.GaussianPrior(torch.zeros(W), ar1(W))


def chain_of(window, overlap: int, method: str = "diffcollage", **options):
    g = graphs.chain((L - W) // (W - overlap) + 1, W, overlap)
    assert g.length == (L,)
    if method == "diffcollage" and "separator" not in options:
        options["separator_prior"] = window.marginal(range(overlap))
    return collage(window, g, method=method, **options)


def ddim_covariance(prior, steps: int) -> torch.Tensor:
    """The exact covariance of deterministic DDIM from N(0, I): the predictions are linear in x_t (zero
    mean), so the sampler is a matrix M and its samples have covariance M M^T."""
    n = prior.sample_shape[0]
    m = ddim(prior, torch.eye(n, dtype=torch.float64), prior.schedule.timesteps(steps)).T
    return m @ m.T


def ddpm_covariance(prior, steps: int) -> torch.Tensor:
    """The exact covariance of ancestral sampling: each step is x_s = M x_t + std z."""
    n = prior.sample_shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    cov, ts = eye.clone(), prior.schedule.timesteps(steps)
    for t, s in zip(ts[:-1], ts[1:]):
        a_t, s_t = coefs(prior.schedule, t, eye)
        a_s, s_s = coefs(prior.schedule, s, eye)
        var = s_t**2 - (a_t / a_s) ** 2 * s_s**2
        m = ((a_t / a_s) * s_s**2 / s_t**2 * eye + a_s * var / s_t**2 * prior.predict(eye, t).x0).T
        cov = m @ cov @ m.T + var * s_s**2 / s_t**2 * eye
    return cov


def test_the_score_is_exact_as_t_goes_to_zero(window):
    # at t = 0 the chain's score is the exact score of the Markov process; AR(1) stays (numerically)
    # Markov at small noise, so the collage's eps is the exact joint's to rounding there
    truth = diffcore.priors.GaussianPrior(torch.zeros(L), ar1(L))
    dc, md = chain_of(window, 8), chain_of(window, 8, "multidiffusion")
    x0 = truth.sample(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for t in (0.001, 0.01):
        a, s = truth.schedule.alpha(torch.tensor(t)), truth.schedule.sigma(torch.tensor(t))
        x_t = a * x0 + s * noise
        exact = truth.predict(x_t, t).eps
        assert float((dc.predict(x_t, t).eps - exact).norm() / exact.norm()) < 1e-8
        assert float((md.predict(x_t, t).eps - exact).norm() / exact.norm()) > 0.1  # averaging is not a score
    # at t > 0 the product of noised window marginals is not the noised joint: a small, stated error
    t = 0.2
    a, s = truth.schedule.alpha(torch.tensor(t)), truth.schedule.sigma(torch.tensor(t))
    x_t = a * x0 + s * noise
    exact = truth.predict(x_t, t).eps
    rel = float((dc.predict(x_t, t).eps - exact).norm() / exact.norm())
    assert 1e-4 < rel < 0.01


def acf(cov: torch.Tensor, lags: int = 24) -> torch.Tensor:
    """The covariance at each lag, averaged over the pairs at that lag (a stationary signal's autocovariance)."""
    i = torch.arange(cov.shape[0])
    lag = (i[:, None] - i[None]).abs()
    return torch.stack([cov[lag == k].mean() for k in range(lags)])


def test_chain_samples_reproduce_the_long_covariance(window):
    """2000 ancestral samples of a length-64 AR(1) signal from windows of 16 overlapping by 8 follow the
    covariance this sampler produces (computed exactly), whose error to rho^|i-j| is well below
    MultiDiffusion's."""
    dc, md = chain_of(window, 8), chain_of(window, 8, "multidiffusion")
    x = diffcore.sample(dc, 2000, steps=100, sampler="ddpm", generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert dc.calls == 200  # one batched call for the 7 windows and one for the 6 overlaps per step
    sampled, exact = acf(torch.cov(x.T)), acf(ddpm_covariance(dc, 100))
    assert float((sampled - exact).abs().max()) < 0.04  # sampling noise of 2000 samples
    truth = RHO ** torch.arange(24.0, dtype=torch.float64)
    dc_err = float((sampled - truth).abs().max())
    md_err = float((acf(ddpm_covariance(md, 100)) - truth).abs().max())
    assert dc_err < 0.6 * md_err, (dc_err, md_err)


@pytest.mark.parametrize("overlap", [4, 8])
def test_exact_sampler_covariances_rank_the_methods(window, overlap):
    """No sampling noise: the covariance each sampler produces, pushed through exactly (docs/collage.md)."""
    truth = ar1(L)
    err = {}
    for name, prior in (
        ("dc", chain_of(window, overlap)),
        ("md", chain_of(window, overlap, "multidiffusion")),
        ("mix", chain_of(window, overlap, "mixture")),
    ):
        err[name] = (float((ddim_covariance(prior, 200) - truth).abs().max()), float((ddpm_covariance(prior, 200) - truth).abs().max()))
    for k in (0, 1):
        assert err["dc"][k] < 0.8 * min(err["md"][k], err["mix"][k]), err
    assert err["dc"][1] < (0.14 if overlap == 4 else 0.07), err  # the SDE corrects more of the t > 0 error than the ODE


def test_a_single_window_and_independent_tiles_are_exact(window):
    one = collage(window, graphs.chain(1, W, 4), separator_prior=window.marginal(range(4)))
    single = ddpm_covariance(window, 50)
    assert torch.allclose(ddpm_covariance(one, 50), single, atol=1e-10)
    tiles = collage(window, graphs.chain(2, W, 0))
    assert torch.allclose(ddpm_covariance(tiles, 50), torch.block_diag(single, single), atol=1e-10)


def test_a_cycle_is_a_stationary_loop(window):
    """A loop of 6 windows of 16 (overlap 8): the covariance across the canvas end is that between
    neighbours anywhere else, and the same as inside a chain drawn the same way, where a chain of
    the same length leaves its two ends nearly independent."""
    overlap, steps = 8, 200
    loop = collage(window, graphs.cycle(6, W, overlap), separator_prior=window.marginal(range(overlap)))
    n = loop.sample_shape[0]
    assert n == 48
    cov = ddpm_covariance(loop, steps)
    neighbours = torch.stack([cov[i, (i + 1) % n] for i in range(n)])
    assert float(neighbours.max() - neighbours.min()) < 0.005, neighbours
    assert abs(float(cov[n - 1, 0]) - float(neighbours[: n - 1].mean())) < 0.005
    assert float(cov.diagonal().max() - cov.diagonal().min()) < 0.005
    # shifting by a window stride is a symmetry of the loop: the covariance is invariant under it
    shift = torch.roll(torch.roll(cov, W - overlap, 0), W - overlap, 1)
    assert torch.allclose(shift, cov, atol=1e-8)
    chain = ddpm_covariance(collage(window, graphs.chain(6, W, overlap), separator_prior=window.marginal(range(overlap))), steps)
    inside = torch.stack([chain[i, i + 1] for i in range(16, 40)])
    assert abs(float(neighbours.mean()) - float(inside.mean())) < 0.01
    assert float(chain[0, -1]) < 0.05 < float(cov[0, n // 2])  # the ends of a chain are far apart; on a loop nothing is


def test_the_mode_separator_converges_to_the_exact_marginal(window):
    """The derived 'mode' separator is exact for a Gaussian at its fixed point: with enough
    iterations its prediction is the exact marginal's; one iteration is an approximation."""
    overlap, t = 8, 0.5
    exact = chain_of(window, overlap)
    x = torch.randn(16, L, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = exact.predict(x, t).eps

    def rel(steps):
        p = chain_of(window, overlap, separator="mode", separator_steps=steps)
        return float((p.predict(x, t).eps - target).norm() / target.norm())

    one, many = rel(1), rel(60)
    assert many < 1e-4 < one, (one, many)
    assert rel(4) < one


def test_a_grid_sums_window_scores_minus_strips_plus_corners():
    """2-D: a separable AR(1) x AR(1) Gaussian on 6x6 windows, a 2x2 grid with overlap 2; the collage's eps
    is sigma times the counted sum of the exact noised precisions of windows, strips and corner."""
    c = torch.kron(ar1(6, 0.7), ar1(6, 0.5))
    window = diffcore.priors.GaussianPrior(torch.zeros(36), c, shape=(1, 6, 6))
    g = graphs.grid(2, 2, 6, 2)
    assert [s.count for s in g.separators] == [-1, -1, -1, -1, 1]

    def marginal(h, w):
        rows, cols = torch.arange(h), torch.arange(w)
        idx = (rows[:, None] * 6 + cols[None]).reshape(-1)
        return diffcore.priors.GaussianMixturePrior(torch.zeros(1, h * w), None, c[idx][:, idx][None], shape=(1, h, w))

    seps = {(1, 6, 2): marginal(6, 2), (1, 2, 6): marginal(2, 6), (1, 2, 2): marginal(2, 2)}
    prior = collage(window, g, separator_prior=seps)
    assert prior.sample_shape == (1, 10, 10)
    t = torch.tensor(0.3, dtype=torch.float64)
    a, s = window.schedule.alpha(t), window.schedule.sigma(t)
    precision = torch.zeros(100, 100, dtype=torch.float64)

    def add(top, left, h, w, sign):
        rows, cols = torch.arange(top, top + h), torch.arange(left, left + w)
        idx = (rows[:, None] * 10 + cols[None]).reshape(-1)
        sub = seps[(1, h, w)] if (h, w) != (6, 6) else window
        cov = sub.covariances()[0]
        precision[idx[:, None], idx[None]] += sign * torch.linalg.inv(a * a * cov + s * s * torch.eye(h * w, dtype=torch.float64))

    for top in (0, 4):
        for left in (0, 4):
            add(top, left, 6, 6, 1)
    add(0, 4, 6, 2, -1), add(4, 4, 6, 2, -1), add(4, 0, 2, 6, -1), add(4, 4, 2, 6, -1), add(4, 4, 2, 2, 1)
    x = torch.randn(3, 1, 10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = s * x.reshape(3, 100) @ precision
    assert torch.allclose(prior.predict(x, t).eps.reshape(3, 100), expected, atol=1e-10)
