"""The collage prior: the Prior contract, batched calls that do not grow with the canvas, every
sampler, per-window conditions, the baselines' formulas, outpainting and tiled latents."""

from __future__ import annotations

import pytest
import torch

import diffcore
from diff_collage import collage, graphs, outpaint, segments
from diff_collage.latent import TiledLatent
from diffcore import Cond
from diffcore.errors import DiffcoreError
from diffcore.priors import GaussianPrior, PriorWrapper
from diffcore.protocols import Prediction, PriorBase
from diffcore.testing import check_prior


def ar1(n: int, rho: float = 0.8) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    return rho ** (i[:, None] - i[None]).abs()


WINDOW = GaussianPrior(torch.zeros(8), ar1(8))


class Recording(PriorWrapper):
    """Counts calls and keeps the batch sizes and conditions it saw."""

    def __init__(self, prior):
        super().__init__(prior)
        self.seen = []

    def predict(self, x_t, t, cond=None):
        self.seen.append((tuple(x_t.shape), cond))
        return self.prior.predict(x_t, t, cond)


class Labelled(PriorBase):
    """A class-conditional Gaussian: N(label, I) per sample, exact; label 9 is the null class."""

    accepts = frozenset({"labels"})
    class_names = tuple("abcdefghi")
    null_cond = Cond(labels=torch.tensor([9]))

    def __init__(self, n=8):
        self.sample_shape = (n,)
        self.schedule = WINDOW.schedule

    def predict(self, x_t, t, cond=None):
        labels = cond.labels.to(x_t.dtype).expand(x_t.shape[0])[:, None]
        a = self.schedule.alpha(torch.as_tensor(t, dtype=torch.float64)).to(x_t.dtype)
        s = self.schedule.sigma(torch.as_tensor(t, dtype=torch.float64)).to(x_t.dtype)
        mean = labels.where(labels != 9, torch.zeros_like(labels))
        eps = (x_t - a * mean) * s  # unit variance: x_t ~ N(a m, I) for a VP schedule
        return Prediction.from_eps(x_t, eps, a, s)


def test_the_collage_is_a_prior():
    for method in ("diffcollage", "multidiffusion", "mixture"):
        prior = collage(WINDOW, graphs.chain(3, 8, 2), method=method, separator="mode")
        check_prior(prior, n=3)
        assert prior.sample_shape == (20,) and prior.image_shape == (20,) and prior.latent is None
        assert prior.sample_marginal(4, 0.5) is None  # samplers start from N(0, I): it changes the distribution
        assert prior.schedule is WINDOW.schedule and prior.accepts == frozenset()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "euler", "heun", "dpm++2m"])
def test_every_sampler_runs_on_a_collage(sampler):
    prior = collage(WINDOW, graphs.cycle(4, 8, 2), separator="mode")
    x = diffcore.sample(prior, 3, steps=6, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 24) and bool(torch.isfinite(x).all())


@pytest.mark.parametrize("method, per_step", [("diffcollage", 2), ("multidiffusion", 1), ("mixture", 1)])
def test_sequential_calls_do_not_grow_with_the_canvas(method, per_step):
    options = {"separator_prior": WINDOW.marginal(range(2))} if method == "diffcollage" else {}
    for windows in (2, 8, 32):
        inner = Recording(WINDOW)
        prior = collage(inner, graphs.chain(windows, 8, 2), method=method, **options)
        diffcore.sample(prior, 2, steps=5, generator=torch.Generator().manual_seed(0))
        assert prior.calls == 5 * per_step
        assert inner.seen[0][0] == (2 * windows, 8)  # all windows of a step in one batch
    bounded = collage(WINDOW, graphs.chain(32, 8, 2), method=method, max_batch=10, **options)
    bounded.predict(torch.zeros(2, bounded.sample_shape[0]), 0.5)
    assert bounded.calls == 7 + (7 if method == "diffcollage" else 0)  # 64 windows and 62 overlaps in batches of 10


def test_mode_separator_calls_the_window_prior_once_more_per_iteration():
    prior = collage(WINDOW, graphs.chain(5, 8, 2), separator="mode", separator_steps=3)
    prior.predict(torch.zeros(2, 32), 0.5)
    assert prior.calls == 4


def test_multidiffusion_averages_and_the_mixture_blends():
    g = graphs.chain(2, 8, 4)  # cells 4..7 are in both windows
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(0))
    a, b = WINDOW.predict(x[:, :8], 0.4), WINDOW.predict(x[:, 4:], 0.4)
    md = collage(WINDOW, g, method="multidiffusion").predict(x, 0.4)
    assert torch.allclose(md.eps[:, :4], a.eps[:, :4]) and torch.allclose(md.eps[:, 8:], b.eps[:, 4:])
    assert torch.allclose(md.eps[:, 4:8], (a.eps[:, 4:] + b.eps[:, :4]) / 2, atol=1e-6)
    mix = collage(WINDOW, g, method="mixture").predict(x, 0.4)
    u = torch.arange(8.0)
    w = torch.exp(-0.5 * ((u - 3.5) / 0.8) ** 2)
    expected = (w[4:] * a.eps[:, 4:] + w[:4] * b.eps[:, :4]) / (w[4:] + w[:4])
    assert torch.allclose(mix.eps[:, 4:8], expected, atol=1e-5)
    assert torch.allclose(mix.eps[:, :4], a.eps[:, :4], atol=1e-6)


def test_diffcollage_sums_windows_and_subtracts_the_separator():
    g = graphs.chain(2, 8, 4)
    sep = WINDOW.marginal(range(4))
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a, b, s = WINDOW.predict(x[:, :8], 0.4), WINDOW.predict(x[:, 4:], 0.4), sep.predict(x[:, 4:8], 0.4)
    dc = collage(WINDOW, g, separator_prior=sep).predict(x, 0.4)
    assert torch.allclose(dc.eps[:, 4:8], a.eps[:, 4:] + b.eps[:, :4] - s.eps, atol=1e-12)
    assert torch.allclose(dc.eps[:, 8:], b.eps[:, 4:], atol=1e-12)


def test_per_window_conditions():
    inner = Recording(Labelled())
    conds = [Cond(labels=torch.tensor([k])) for k in (1, 1, 2)]
    prior = collage(inner, graphs.chain(3, 8, 2), conds=conds, separator="mode")
    assert prior.accepts == frozenset() and prior.null_cond == Cond()
    prior.predict(torch.zeros(2, 20), 0.5)
    (_, window_cond), (_, sep_cond) = inner.seen
    assert window_cond.labels.tolist() == [1, 1, 1, 1, 2, 2]  # window-major: each window's label for its 2 samples
    assert sep_cond.labels.tolist() == [1, 1, 9, 9]  # same label on both sides, else the null class
    x = diffcore.sample(
        collage(Labelled(), graphs.chain(3, 8, 2), conds=conds, separator="mode"), 400, steps=20, generator=torch.Generator().manual_seed(0)
    )
    assert abs(float(x[:, :4].mean()) - 1) < 0.15 and abs(float(x[:, 16:].mean()) - 2) < 0.15
    assert segments(["a", "b"], 3) == ["a", "a", "b"]


def test_condition_errors_are_one_line():
    with pytest.raises(DiffcoreError, match="2 conditions for a graph of 3 windows"):
        collage(Labelled(), graphs.chain(3, 8, 2), conds=[Cond(labels=torch.tensor([1]))] * 2)
    with pytest.raises(DiffcoreError, match="must be a diffcore.Cond"):
        collage(Labelled(), graphs.chain(2, 8, 2), conds=[1, 2])
    with pytest.raises(DiffcoreError, match="does not accept text"):
        collage(Labelled(), graphs.chain(2, 8, 2), conds=[Cond(text="a")] * 2)
    fixed = collage(Labelled(), graphs.chain(2, 8, 2), conds=[Cond(labels=torch.tensor([1]))] * 2, separator="mode")
    with pytest.raises(DiffcoreError, match="does not accept labels"):
        fixed.predict(torch.zeros(1, 14), 0.5, Cond(labels=torch.tensor([3])))
    free = collage(Labelled(), graphs.chain(2, 8, 2), separator="mode")
    assert free.accepts == frozenset({"labels"}) and free.class_names == tuple("abcdefghi")
    assert free.predict(torch.zeros(2, 14), 0.5, Cond(labels=torch.tensor([3]))).x0.shape == (2, 14)


def test_bad_options_are_one_line():
    with pytest.raises(DiffcoreError, match="unknown collage method 'average'"):
        collage(WINDOW, graphs.chain(2, 8, 2), method="average")
    with pytest.raises(DiffcoreError, match="a window this prior cannot take"):
        collage(WINDOW, graphs.chain(2, 16, 2))
    with pytest.raises(DiffcoreError, match="max_batch"):
        collage(WINDOW, graphs.chain(2, 8, 2), max_batch=0)
    with pytest.raises(DiffcoreError, match="separator_steps"):
        collage(WINDOW, graphs.chain(2, 8, 2), separator="mode", separator_steps=0)
    with pytest.raises(DiffcoreError, match="cannot predict on the overlap's shape \\(2,\\).*separator='mode'"):
        collage(WINDOW, graphs.chain(2, 8, 2)).predict(torch.zeros(1, 14), 0.5)
    with pytest.raises(DiffcoreError, match="not a box.*separator='mode'"):
        collage(WINDOW, graphs.cycle(2, 8, 2), separator="crop")
    with pytest.raises(DiffcoreError, match="expected \\(N, 14\\)"):
        collage(WINDOW, graphs.chain(2, 8, 2), separator="mode").predict(torch.zeros(1, 15), 0.5)


def test_outpainting_keeps_what_exists():
    inner = Recording(WINDOW)
    g = graphs.chain(3, 8, 3)
    x = outpaint(inner, g, n=4, steps=7, sampler="ddpm", generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 18) and len(inner.seen) == 3 * 7  # windows x steps sequential calls
    # the second window's sampling never moves the overlap that the first one made
    first = outpaint(WINDOW, graphs.chain(1, 8, 3), n=4, steps=7, sampler="ddpm", generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[:, :8], first)
    loop = outpaint(WINDOW, graphs.cycle(3, 8, 2), n=2, steps=5, generator=torch.Generator().manual_seed(1))
    assert loop.shape == (2, 18)
    with pytest.raises(DiffcoreError, match="2 conditions for a graph of 3 windows"):
        outpaint(WINDOW, g, steps=2, conds=[Cond()] * 2)


class Upsample:
    """A linear 'autoencoder': each latent cell becomes a 2x2 block of pixels (and back)."""

    def image_shape(self, shape):
        c, h, w = shape
        return (c, 2 * h, 2 * w)

    def decode(self, z):
        return z.repeat_interleave(2, -1).repeat_interleave(2, -2)

    def encode(self, x):
        return torch.nn.functional.avg_pool2d(x, 2)


@pytest.mark.parametrize(
    "g", [graphs.chain(3, 4, 2), graphs.cycle(3, 4, 1), graphs.grid(2, 3, 4, 2, wrap=True)], ids=["chain", "cycle", "grid"]
)
def test_tiled_decoding_equals_decoding_the_whole_canvas(g):
    from diff_collage.layout import Layout

    lay = Layout(g, (1, 4, 4))
    tiled = TiledLatent(Upsample(), lay, max_batch=2)
    z = torch.randn(2, *lay.canvas_shape, generator=torch.Generator().manual_seed(0))
    assert tiled.image_shape() == tuple(Upsample().decode(z).shape[1:])
    assert torch.allclose(tiled.decode(z), Upsample().decode(z), atol=1e-6)
    assert torch.allclose(tiled.encode(tiled.decode(z)), z, atol=1e-6)


def test_a_window_may_cut_the_frames_axis_of_a_video():
    """A 'video' prior on (frames, channels, height, width) = (4, 1, 2, 2): a chain along the frames axis."""
    frames = ar1(4, 0.9)
    video = GaussianPrior(torch.zeros(16), torch.kron(frames, torch.eye(4, dtype=torch.float64)), shape=(4, 1, 2, 2))
    g = graphs.chain(3, 4, 2, axis=-4)
    sep = video.marginal(range(8))  # the first two frames
    sep.sample_shape = (2, 1, 2, 2)
    prior = collage(video, g, separator_prior=sep)
    assert prior.sample_shape == (8, 1, 2, 2) and [s.shape for s in prior.layout.separators] == [(2, 1, 2, 2)] * 2
    x = diffcore.sample(prior, 3, steps=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 8, 1, 2, 2)
    # frames 2..3 are in windows 0 and 1: their eps is the two windows' minus the separator's
    xt = torch.randn(2, 8, 1, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, b, s = video.predict(xt[:, :4], 0.3), video.predict(xt[:, 2:6], 0.3), sep.predict(xt[:, 2:4], 0.3)
    assert torch.allclose(prior.predict(xt, 0.3).eps[:, 2:4], a.eps[:, 2:] + b.eps[:, :2] - s.eps, atol=1e-10)
