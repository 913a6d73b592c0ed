"""Windowed tasks: lengths, measured frames kept, windows chained, frame counts and sizes refused on one line."""

from __future__ import annotations

import pytest
import torch

import diffcore
from diff_video.per_frame import PerFrame
from diff_video.tasks import extend, frames_prior, generate, interpolate, upscale
from diffcore import Cond
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.priors import Conditioned


@pytest.fixture(scope="module")
def prior():
    image = diffcore.create("prior", "gaussian", mean=[0.0] * 16, shape=(1, 4, 4))
    return PerFrame(image, 4)


def _video(frames, size=4, seed=0):
    return torch.randn(2, frames, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 0.5


def test_extend_chains_windows(prior):
    video = _video(3)
    calls = []

    class Counting(PerFrame):
        def predict(self, x_t, t, cond=None):
            calls.append(x_t.shape[1])
            return super().predict(x_t, t, cond)

    counting = Counting(prior.prior, 4)
    out = extend(counting, video, 5, context=2, steps=3, generator=torch.Generator().manual_seed(1))
    assert out.shape == (2, 8, 1, 4, 4) and torch.equal(out[:, :3], video)
    assert len(calls) == 3 * 3  # 5 new frames, 2 per window of 4 with 2 of context: 3 windows of 3 steps


def test_interpolate_keeps_every_input_frame(prior):
    video = _video(5)
    for method in ("guidance", "replacement"):
        out = interpolate(prior, video, 2, method=method, steps=3, generator=torch.Generator().manual_seed(2))
        assert out.shape == (2, 9, 1, 4, 4)  # windows of 3 frames (the prior's 4 take one gap of 2), sharing ends
        assert torch.equal(out[:, ::2], video)
    out = interpolate(prior, video[:, :3], 3, steps=2, generator=torch.Generator().manual_seed(3))
    assert out.shape[1] == 7 and torch.equal(out[:, ::3], video[:, :3])


def test_upscale_windows_and_keeps_the_block_means(prior):
    low = _video(6, size=2)
    out = upscale(prior, low, 2, steps=3, generator=torch.Generator().manual_seed(4))
    assert out.shape == (2, 6, 1, 4, 4)
    pooled = torch.nn.functional.avg_pool2d(out.flatten(0, 1), 2).unflatten(0, (2, 6))
    assert torch.allclose(pooled, low, atol=1e-5)


def test_generate_and_frame_counts(prior):
    assert generate(prior, 3, frames=6, steps=2, generator=torch.Generator().manual_seed(5)).shape == (3, 6, 1, 4, 4)
    wrapped = Conditioned(prior, Cond())
    assert frames_prior(wrapped, 7).sample_shape == (7, 1, 4, 4)  # through a wrapper


def test_refusals(prior):
    with pytest.raises(DiffcoreError, match="needs a video prior"):
        generate(prior.prior, 2, steps=2)
    with pytest.raises(ShapeError, match="resize the video"):
        extend(prior, _video(3, size=8), 2, steps=2)
    with pytest.raises(DiffcoreError, match="context must be between 1 and 3"):
        extend(prior, _video(3), 2, context=4, steps=2)
    with pytest.raises(DiffcoreError, match="interpolating by 4 needs windows of 5 frames; this prior makes 4"):
        interpolate(prior, _video(3), 4, steps=2)
    with pytest.raises(DiffcoreError, match="unknown method 'inpaint'"):
        upscale(prior, _video(2, size=2), 2, method="inpaint", steps=2)
    with pytest.raises(DiffcoreError, match="factor 3 does not divide"):
        upscale(prior, _video(2, size=2), 3, steps=2)
