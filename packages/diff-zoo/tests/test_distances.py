"""The card's yardsticks on cases with known answers: Frechet and nearest-neighbour distances,
image statistics, the fitted Gaussian and the digits classifier."""

from __future__ import annotations

import math

import pytest
import torch

from diff_zoo import data
from diff_zoo.baselines import FittedGaussian
from diff_zoo.classifier import DigitClassifier
from diff_zoo.distances import frechet_distance, nearest_neighbour_distances, nearest_training_distances, summary
from diff_zoo.features import FEATURE_NAMES, image_statistics, luminance, scaled
from diffcore.errors import ShapeError


def _points(n=500, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64) + 0.3


def test_frechet_distance_of_a_set_to_itself_is_zero_and_to_a_shift_is_the_squared_shift():
    x = _points()
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 1.0], dtype=torch.float64)
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift.pow(2).sum()), rel=1e-8)


def test_frechet_distance_to_a_scaled_copy_is_exact():
    # y = 2x: C_y = 4 C_x, so tr(C_x + C_y - 2 (C_x^1/2 C_y C_x^1/2)^1/2) = tr(C_x), and |m - 2m|^2 = |m|^2
    x = _points(seed=1)
    expected = float(x.mean(0).pow(2).sum() + torch.cov(x.T).trace())
    assert frechet_distance(x, 2 * x) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(2 * x, x) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_between_gaussians_matches_the_closed_form():
    # N(0, I) against N(0, 4 I) in d dims: d (1 + 4 - 2 * 2) = d, up to sampling error
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(20000, 3, generator=g), 2 * torch.randn(20000, 3, generator=g)
    assert frechet_distance(x, y) == pytest.approx(3.0, rel=0.05)


def test_frechet_distance_rejects_mismatched_or_bad_input():
    with pytest.raises(ShapeError):
        frechet_distance(torch.zeros(10, 3), torch.zeros(10, 4))
    with pytest.raises(ShapeError):
        frechet_distance(torch.zeros(1, 3), torch.zeros(10, 3))
    with pytest.raises(Exception, match="non-finite"):
        frechet_distance(torch.full((10, 3), float("nan")), torch.zeros(10, 3))


def test_nearest_neighbour_distance_of_training_images_to_the_training_set_is_zero():
    train = data.digits().train.images()
    d = nearest_neighbour_distances(train[::50], train, chunk=100)
    assert d.shape == (len(train[::50]),) and float(d.max()) < 1e-6
    # a constant offset of 0.25 on every pixel of an image that is alone in the reference
    assert float(nearest_neighbour_distances(train[:1] + 0.25, train[:1])[0]) == pytest.approx(0.25, abs=1e-9)
    # chunking does not change the answer
    x = train[:7] * 0.9
    assert torch.allclose(nearest_neighbour_distances(x, train, chunk=64), nearest_neighbour_distances(x, train, chunk=5000))


def test_nearest_training_distances_count_flipped_copies():
    train = data.digits().train.images()[:200]
    mirrored = train[:5].flip(-1)
    assert float(nearest_training_distances(mirrored, train, ("h",)).max()) < 1e-6
    assert float(nearest_training_distances(mirrored, train).min()) > 0.05
    both = train[:5].flip(-1).flip(-2)
    assert float(nearest_training_distances(both, train, ("h", "v")).max()) < 1e-6


def test_summary_is_min_first_percentile_median_and_mean():
    s = summary(torch.arange(101, dtype=torch.float64))
    assert s == {"min": 0.0, "p01": 1.0, "median": 50.0, "mean": 50.0}


def test_image_statistics_know_noise_from_edges():
    g = torch.Generator().manual_seed(0)
    noise = 0.3 * torch.randn(128, 1, 32, 32, generator=g)
    f = image_statistics(noise)
    assert f.shape == (128, len(FEATURE_NAMES)) and f.dtype == torch.float64
    kurtosis = [i for i, n in enumerate(FEATURE_NAMES) if "kurtosis" in n]
    top = [i for i, n in enumerate(FEATURE_NAMES) if "top-10%" in n]
    assert f[:, kurtosis].mean(0).exp().sub(3).abs().max() < 0.3  # Gaussian differences: kurtosis 3
    edge = -torch.ones(4, 1, 32, 32)
    edge[..., 11:] = 1.0  # one vertical step edge: all difference energy in one column
    fe = image_statistics(edge)
    assert float(fe[:, top[0]].min()) > 0.99 and float(fe[:, kurtosis[0]].min()) > math.log(20)
    # the normalised statistics do not depend on contrast (well above the contrast floor)
    assert torch.allclose(image_statistics(noise * 2)[:, 2:], f[:, 2:], atol=1e-3)


def test_luminance_and_scaling():
    rgb = torch.zeros(2, 3, 8, 8)
    rgb[:, 1] = 1.0
    assert torch.allclose(luminance(rgb), torch.full((2, 1, 8, 8), 0.587))
    with pytest.raises(ShapeError):
        luminance(torch.zeros(2, 2, 8, 8))
    f = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    assert torch.allclose(scaled(f, f).std(0), torch.ones(2))


def test_image_statistics_tell_data_from_a_gaussian_fitted_to_it():
    """What the cards rely on: real phantoms are far closer to held-out phantoms than a fitted Gaussian is."""
    d = data.phantoms(n_train=600, n_test=200, size=32)
    train, test = d.train.images(), d.test.images()
    gauss = FittedGaussian.fit(train).sample(200, generator=torch.Generator().manual_seed(0))
    ref = image_statistics(test)
    dist = lambda x: frechet_distance(scaled(image_statistics(x), ref), scaled(ref, ref))  # noqa: E731
    assert dist(gauss) > 10 * dist(train[:200])


def test_fitted_gaussian_recovers_moments_per_class_and_clips():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([0.05 * torch.randn(3000, 1, 2, 2, generator=g) - 0.5, 0.05 * torch.randn(3000, 1, 2, 2, generator=g) + 0.5])
    labels = torch.arange(2).repeat_interleave(3000)
    fit = FittedGaussian.fit(x, labels, max_images=2000)
    s = fit.sample(1000, torch.arange(1000) % 2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(s[0::2].mean(0), torch.full((1, 2, 2), -0.5), atol=0.01)
    assert torch.allclose(s[1::2].mean(0), torch.full((1, 2, 2), 0.5), atol=0.01)
    assert torch.allclose(s[1::2].std(0), torch.full((1, 2, 2), 0.05), atol=0.01)
    wide = FittedGaussian.fit(3 * torch.randn(500, 1, 2, 2, generator=g)).sample(100, generator=g)
    assert wide.min() >= -1 and wide.max() <= 1
    same = fit.sample(10, torch.zeros(10, dtype=torch.long), generator=torch.Generator().manual_seed(5))
    assert torch.equal(same, fit.sample(10, torch.zeros(10, dtype=torch.long), generator=torch.Generator().manual_seed(5)))


def test_the_digits_classifier_is_accurate_and_deterministic():
    d = data.digits()
    a, b = DigitClassifier.fit(d.train), DigitClassifier.fit(d.train)
    assert a.accuracy(d.test.images(), d.test.labels) >= 0.95
    test = d.test.images()[:20]
    assert (a.features(test) == b.features(test)).all() and a.features(test).shape == (20, 45)
    with pytest.raises(ShapeError):
        a.predict(torch.zeros(2, 1, 8, 8))
