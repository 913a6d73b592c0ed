"""The deepinv adapter (skipped without deepinv), and our operators against deepinv's as a peer."""

import warnings

import pytest
import torch

import diffcore
from diff_inverse import operators as O
from diffcore.errors import DiffcoreError
from diffcore.testing import check_operator

dinv = pytest.importorskip("deepinv")
torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize(
    ("x_shape", "physics", "options", "has_svd"),
    [
        ((3, 8, 8), "Inpainting", {"img_size": (3, 8, 8), "mask": 0.5}, True),
        ((3, 8, 8), "Denoising", {}, True),
        ((1, 8, 8), "CompressedSensing", {"m": 20, "img_size": (1, 8, 8)}, False),
        (
            (1, 8, 8),
            "BlurFFT",
            {"img_size": (1, 8, 8), "filter": torch.rand(1, 1, 3, 3, generator=torch.Generator().manual_seed(0))},
            False,
        ),
        ((1, 8, 8), "Downsampling", {"img_size": (1, 8, 8), "factor": 2, "filter": "bicubic"}, False),
    ],
)
def test_deepinv_physics_pass_the_contract(x_shape, physics, options, has_svd):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        op = diffcore.create("operator", "deepinv", x_shape=x_shape, physics=physics, options=options)
        assert op.linear and op.has_svd == has_svd
        check_operator(op, dtype=torch.float32, rtol=1e-4, pinv_rtol=1e-2)


def test_deepinv_bad_name():
    with pytest.raises(DiffcoreError, match="no operator named 'Nope'"):
        diffcore.create("operator", "deepinv", x_shape=(1, 8, 8), physics="Nope")


def test_our_operators_agree_with_deepinv():
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    kernel = torch.rand(5, 3, generator=torch.Generator().manual_seed(0))
    ours = O.ConvolutionBlur((1, 16, 16), kernel=kernel, rcond=0.0).A(x)
    theirs = dinv.physics.BlurFFT(img_size=(1, 16, 16), filter=kernel[None, None]).A(x)
    assert torch.allclose(ours, theirs, atol=1e-5), "same kernel centre and circular convolution as deepinv"
    assert torch.allclose(ours, dinv.physics.Blur(filter=kernel[None, None], padding="circular").A(x), atol=1e-5)
    mask = torch.rand(16, 16, generator=torch.Generator().manual_seed(2)) > 0.5
    assert torch.equal(
        O.Inpainting((1, 16, 16), mask=mask).A(x), dinv.physics.Inpainting(img_size=(1, 16, 16), mask=mask.float()[None]).A(x)
    )
