"""Schedules: boundary values, monotonicity, grids, and agreement with diffusers' tables."""

import math

import pytest
import torch

from diffcore.errors import DiffcoreError
from diffcore.schedules import DiscreteSchedule, EDMSchedule, VESchedule, VPSchedule, make_schedule, time_at_log_snr

ALL = [
    DiscreteSchedule.linear(1000),
    DiscreteSchedule.scaled_linear(1000),
    DiscreteSchedule.cosine(1000),
    VPSchedule(),
    VESchedule(),
    EDMSchedule(),
]


@pytest.mark.parametrize("s", ALL, ids=lambda s: type(s).__name__)
def test_boundaries_and_monotone(s):
    t = torch.linspace(0, 1, 501, dtype=torch.float64)
    a, sg = s.alpha(t), s.sigma(t)
    assert float(a[0]) == pytest.approx(1.0) and float(sg[0]) == pytest.approx(0.0, abs=1e-12)
    lam = s.log_snr(t[1:])
    assert bool((lam[1:] < lam[:-1]).all()), "log-SNR must fall with t"
    grid = s.timesteps(20)
    assert len(grid) == 21 and float(grid[-1]) == 0.0
    assert bool((grid[1:] < grid[:-1]).all())


def test_discrete_grid_points_are_the_table():
    s = DiscreteSchedule.linear(1000)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0)
    idx = torch.tensor([0, 1, 499, 998, 999])
    t = (idx + 1) / 1000
    torch.testing.assert_close(s.alpha(t.double()) ** 2, ab[idx])
    torch.testing.assert_close(s.sigma(t.double()) ** 2, 1 - ab[idx])
    torch.testing.assert_close(s.model_time(t.double()), idx.double())


def test_discrete_spacings_match_diffusers_conventions():
    s = DiscreteSchedule.linear(1000)
    assert s.model_time(s.timesteps(50)[:-1])[:3].tolist() == [980.0, 960.0, 940.0]
    tr = DiscreteSchedule.linear(1000, spacing="trailing")
    assert tr.model_time(tr.timesteps(50)[:-1])[:2].tolist() == [999.0, 979.0]
    off = DiscreteSchedule.linear(1000, steps_offset=1)
    assert off.model_time(off.timesteps(50)[:-1])[-1].item() == 1.0
    sd = DiscreteSchedule.scaled_linear(1000, final_alpha_one=False)
    assert float(sd.timesteps(10)[-1]) == pytest.approx(1 / 1000)


def test_discrete_interpolates_between_grid_points():
    s = DiscreteSchedule.linear(1000)
    lo, hi, mid = (
        torch.tensor(0.5, dtype=torch.float64),
        torch.tensor(0.501, dtype=torch.float64),
        torch.tensor(0.5005, dtype=torch.float64),
    )
    assert float(s.alpha(lo)) > float(s.alpha(mid)) > float(s.alpha(hi))


def test_vp_matches_song_closed_form():
    s = VPSchedule(0.1, 20.0)
    t = torch.tensor(0.3, dtype=torch.float64)
    log_ab = -(0.1 * 0.3 + 0.5 * 19.9 * 0.09)
    assert float(s.alpha(t)) == pytest.approx(math.exp(0.5 * log_ab))
    assert float(s.alpha(t) ** 2 + s.sigma(t) ** 2) == pytest.approx(1.0)


def test_ve_and_edm_sigmas():
    ve = VESchedule(0.01, 50.0)
    t = torch.tensor(1.0, dtype=torch.float64)
    assert float(ve.sigma(t)) == pytest.approx(math.sqrt(50.0**2 - 0.01**2))
    edm = EDMSchedule()
    grid = edm.timesteps(18)
    sig = edm.sigma(grid)
    assert float(sig[0]) == pytest.approx(80.0) and float(sig[-2]) == pytest.approx(0.002)
    # Karras et al. (2022) eq. 5: sigma_i^(1/rho) is linear in i
    root = sig[:-1] ** (1 / 7)
    d = root[1:] - root[:-1]
    torch.testing.assert_close(d, d.mean().expand_as(d))


def test_time_at_log_snr_inverts():
    for s in ALL:
        t = torch.tensor([0.05, 0.4, 0.9], dtype=torch.float64)
        back = time_at_log_snr(s, s.log_snr(t))
        torch.testing.assert_close(s.log_snr(back), s.log_snr(t), atol=1e-6, rtol=1e-6)


def test_bad_input():
    with pytest.raises(DiffcoreError, match="steps must be a positive integer"):
        VPSchedule().timesteps(0)
    with pytest.raises(DiffcoreError, match="exceeds"):
        DiscreteSchedule.linear(10).timesteps(11)
    with pytest.raises(DiffcoreError, match="did you mean 'linear'"):
        make_schedule("linaer")
    with pytest.raises(DiffcoreError, match="alphas_cumprod"):
        DiscreteSchedule(torch.tensor([0.5, 1.5]))
