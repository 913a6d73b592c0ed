"""The video operators: diffcore's operator contract (adjoint, pseudo-inverse, SVD), known values, the registry, a diff-inverse solver."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import diffcore
from diff_video.operators import FrameInpainting, FrameSuperResolution, TemporalSubsampling
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import SVDOperator
from diffcore.testing import check_operator

SHAPE = (4, 2, 6, 6)

CASES = [
    ("video-frames", {"every": 2}),
    ("video-frames", {"keep": [3, 1]}),
    ("video-frames", {"last": 1, "sigma_y": 0.1}),
    ("video-sr", {"factor": 2}),
    ("video-sr", {"factor": 3, "sigma_y": 0.05}),
    ("video-inpaint", {"box": (1, 2, 3, 2)}),
    ("video-inpaint", {"box": (0, 0, 6, 6), "frames": [0, 2]}),
]


@pytest.mark.parametrize(("name", "options"), CASES)
def test_contract(name, options):
    op = diffcore.create("operator", name, x_shape=SHAPE, **options)
    assert isinstance(op, SVDOperator) and op.linear and op.has_svd
    check_operator(op, generator=torch.Generator().manual_seed(0))


def test_known_values():
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(1))
    frames = TemporalSubsampling(SHAPE, keep=[3, 0])
    assert frames.frames == (0, 3) and torch.equal(frames.A(x), x[:, [0, 3]])
    assert TemporalSubsampling(SHAPE, first=2).frames == (0, 1) and TemporalSubsampling(SHAPE, last=3).frames == (1, 2, 3)
    sr = FrameSuperResolution(SHAPE, factor=3)
    assert torch.allclose(sr.A(x), F.avg_pool2d(x.flatten(0, 1), 3).unflatten(0, (2, 4)), atol=1e-6)
    assert torch.allclose(sr.singulars(), torch.full((4 * 2 * 2 * 2,), 1 / 3, dtype=torch.float64))
    hole = FrameInpainting(SHAPE, box=(1, 2, 3, 2), frames=[1])
    y = hole.A(x)
    assert torch.equal(y[:, 1, :, 1:4, 2:4], torch.zeros(2, 2, 3, 2)) and torch.equal(y[:, 0], x[:, 0])
    assert float(hole.mask.sum()) == x[0].numel() - 2 * 3 * 2


def test_noise_is_seeded():
    op = FrameSuperResolution(SHAPE, factor=2, sigma_y=0.1)
    x = torch.zeros(1, *SHAPE)
    a = op.measure(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, op.measure(x, generator=torch.Generator().manual_seed(2)))
    assert 0.07 < float(a.std()) < 0.13


def test_bad_options_fail_on_one_line():
    cases = [
        (lambda: TemporalSubsampling(SHAPE), "exactly one of keep, every, first or last; got none"),
        (lambda: TemporalSubsampling(SHAPE, every=2, first=1), "got every, first"),
        (lambda: TemporalSubsampling(SHAPE, keep=[4]), "do not lie in the video's 4 frames"),
        (lambda: TemporalSubsampling(SHAPE, every=0), "every must be a positive"),
        (lambda: FrameSuperResolution(SHAPE, factor=4), "does not divide the frame size 6x6"),
        (lambda: FrameInpainting(SHAPE, box=(4, 4, 3, 3)), "does not fit in frames of 6x6"),
        (lambda: FrameInpainting(SHAPE, box=(0, 0, 1, 1), frames=[7]), "do not lie in the video's 4 frames"),
        (lambda: FrameSuperResolution((6, 6), factor=2), "takes x_shape \\(F, C, H, W\\)"),
        (lambda: FrameSuperResolution(SHAPE, factor=2, sigma_y=-1.0), "sigma_y must be"),
    ]
    for build, message in cases:
        with pytest.raises(DiffcoreError, match=message) as info:
            build()
        assert "\n" not in str(info.value)
    with pytest.raises(ShapeError, match="expected \\(N, 4, 2, 6, 6\\)"):
        FrameSuperResolution(SHAPE, factor=2).A(torch.zeros(1, 3, 2, 6, 6))


def test_a_diff_inverse_solver_runs_on_a_video_prior_by_registry_name():
    """diff-inverse is not imported: its solver comes from the registry, the operator and the prior from diff-video."""
    names = {c.name for c in diffcore.available("solver")}
    if "ddrm" not in names:
        pytest.skip("diff-inverse is not installed")
    prior = diffcore.create("prior", "per-frame", base="gaussian:mean=[0.0, 0.0, 0.0, 0.0],shape=[1, 2, 2]", frames=3)
    op = diffcore.create("operator", "video-frames", x_shape=prior.sample_shape, every=2)
    x = torch.randn(2, *prior.sample_shape, generator=torch.Generator().manual_seed(3)) * 0.5
    solver = diffcore.create("solver", "ddrm")
    out = solver(prior, op, op.A(x), steps=20, generator=torch.Generator().manual_seed(4))
    assert out.shape == x.shape
    assert float((op.A(out) - op.A(x)).abs().max()) < 1e-3  # noiseless y: DDRM keeps the measured frames
