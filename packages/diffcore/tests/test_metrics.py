"""Sliced Wasserstein distance against exact values."""

from __future__ import annotations

import math

import pytest
import torch

from diffcore.errors import ShapeError
from diffcore.metrics import sliced_wasserstein


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mean_abs_projection_of_ones(d: int) -> float:
    """E|<u, 1>| for u uniform on the unit sphere in R^d: sqrt(d) * Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))."""
    return math.sqrt(d) * math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


def test_identical_sets_are_at_distance_zero():
    x = torch.randn(300, 2, generator=gen(0))
    assert sliced_wasserstein(x, x) == 0.0
    assert sliced_wasserstein(x, x[torch.randperm(300, generator=gen(1))]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("d", [2, 8])
def test_a_shift_of_every_coordinate_gives_c_times_mean_abs_projection(d):
    x = torch.randn(400, d, generator=gen(0), dtype=torch.float64)
    n_dirs = 4000
    # exact for the directions drawn: each projection moves by c <u, 1>, and 1-D W1 of a shift is its size
    dirs = torch.randn(n_dirs, d, generator=gen(5), dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    exact_for_dirs = dirs.sum(1).abs().mean().item()
    for c in (0.25, 1.0, 3.0):
        got = sliced_wasserstein(x, x + c, n_dirs=n_dirs, generator=gen(5))
        assert got == pytest.approx(c * exact_for_dirs, rel=1e-9)
        assert got == pytest.approx(c * mean_abs_projection_of_ones(d), rel=0.03)
    assert mean_abs_projection_of_ones(2) == pytest.approx(2 * math.sqrt(2) / math.pi)


def test_grows_with_the_shift():
    x = torch.randn(500, 2, generator=gen(0))
    y = torch.randn(500, 2, generator=gen(1))
    dists = [sliced_wasserstein(x, y + c) for c in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(dists, dists[1:]))


def test_symmetric_for_equal_and_unequal_sizes():
    x = torch.randn(250, 3, generator=gen(0))
    y = 1.5 * torch.randn(250, 3, generator=gen(1)) + 0.3
    z = torch.randn(173, 3, generator=gen(2)) - 0.2
    assert sliced_wasserstein(x, y) == pytest.approx(sliced_wasserstein(y, x), rel=1e-12)
    assert sliced_wasserstein(x, z) == pytest.approx(sliced_wasserstein(z, x), rel=1e-12)


def test_unequal_sizes_match_the_exact_one_dimensional_w1():
    x = torch.randn(37, 1, generator=gen(0))
    y = 2 * torch.randn(53, 1, generator=gen(1)) + 1
    # in 1-D every direction is +-1, so SW1 is W1 itself; compute W1 from the CDFs: int |F - G| dx
    pts = torch.cat([x, y]).flatten().double().sort().values
    f = (x.flatten().double()[None] <= pts[:-1, None]).double().mean(1)
    g = (y.flatten().double()[None] <= pts[:-1, None]).double().mean(1)
    w1 = ((f - g).abs() * pts.diff()).sum().item()
    assert sliced_wasserstein(x, y, n_dirs=3) == pytest.approx(w1, rel=1e-10)


def test_unequal_sizes_of_the_same_empirical_law_are_at_distance_zero():
    x = torch.randn(120, 2, generator=gen(0))
    assert sliced_wasserstein(x, torch.cat([x, x, x])) == pytest.approx(0.0, abs=1e-12)


def test_unequal_sizes_with_a_shift():
    x = torch.randn(3000, 2, generator=gen(0))
    y = torch.randn(1700, 2, generator=gen(1)) + 2.0
    assert sliced_wasserstein(x, y, n_dirs=1000) == pytest.approx(2.0 * mean_abs_projection_of_ones(2), rel=0.05)


def test_images_are_flattened_and_directions_are_reproducible():
    x = torch.rand(40, 1, 4, 4, generator=gen(0))
    y = torch.rand(30, 1, 4, 4, generator=gen(1))
    assert sliced_wasserstein(x, y) == sliced_wasserstein(x, y)
    assert sliced_wasserstein(x, y, generator=gen(3)) == sliced_wasserstein(x, y, generator=gen(3))
    assert sliced_wasserstein(x, y) == pytest.approx(sliced_wasserstein(x.reshape(40, -1), y.reshape(30, -1)), rel=1e-12)


def test_bad_input_is_refused_with_the_shapes():
    with pytest.raises(ShapeError, match=r"\(5, 2\).*\(5, 3\)"):
        sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ShapeError, match="N >= 1"):
        sliced_wasserstein(torch.zeros(0, 2), torch.zeros(5, 2))
