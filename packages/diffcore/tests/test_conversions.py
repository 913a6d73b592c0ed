"""eps / x0 / v / score conversions round-trip, for any (alpha, sigma)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffcore import conversions as cv
from diffcore.protocols import Prediction

coef = st.floats(min_value=0.05, max_value=20.0)


def _data(seed, shape=(3, 2, 4)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


@settings(max_examples=60, deadline=None)
@given(alpha=coef, sigma=coef, seed=st.integers(0, 2**16))
def test_round_trips(alpha, sigma, seed):
    x0, eps = _data(seed)
    xt = alpha * x0 + sigma * eps
    torch.testing.assert_close(cv.eps_to_x0(xt, eps, alpha, sigma), x0)
    torch.testing.assert_close(cv.x0_to_eps(xt, x0, alpha, sigma), eps)
    v = cv.v_from_x0_eps(x0, eps, alpha, sigma)
    torch.testing.assert_close(cv.v_to_x0(xt, v, alpha, sigma), x0)
    torch.testing.assert_close(cv.v_to_eps(xt, v, alpha, sigma), eps)
    torch.testing.assert_close(cv.score_to_eps(cv.eps_to_score(eps, sigma), sigma), eps)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_per_sample_coefficients_broadcast(seed):
    x0, eps = _data(seed)
    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(3, generator=g, dtype=torch.float64) + 0.1
    sigma = torch.rand(3, generator=g, dtype=torch.float64) + 0.1
    xt = alpha[:, None, None] * x0 + sigma[:, None, None] * eps
    pred = Prediction.from_v(xt, cv.v_from_x0_eps(x0, eps, alpha, sigma), alpha, sigma)
    torch.testing.assert_close(pred.x0, x0)
    torch.testing.assert_close(pred.eps, eps)
    torch.testing.assert_close(Prediction.from_x0(xt, x0, alpha, sigma).eps, eps)
    torch.testing.assert_close(pred.score(sigma), -eps / sigma[:, None, None])


def test_vp_v_matches_salimans_ho_identities():
    # For VP (alpha^2 + sigma^2 = 1): x0 = alpha x_t - sigma v and eps = sigma x_t + alpha v.
    x0, eps = _data(1)
    a, s = 0.6, 0.8
    xt = a * x0 + s * eps
    v = cv.v_from_x0_eps(x0, eps, a, s)
    torch.testing.assert_close(a * xt - s * v, x0)
    torch.testing.assert_close(s * xt + a * v, eps)
