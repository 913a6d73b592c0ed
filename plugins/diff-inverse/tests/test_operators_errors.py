"""Bad input gets a clear error (a DiffcoreError subclass, with a message that says what to do)."""

import pytest
import torch

import diffcore
from diff_inverse import operators as O
from diffcore.errors import DiffcoreError, ShapeError

torch.set_num_threads(1)

S = (3, 16, 16)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: O.Denoising(S, sigma_y=-0.1), DiffcoreError, "sigma_y must be a finite number >= 0"),
        (lambda: O.Denoising(S, noise="laplace"), DiffcoreError, "noise must be 'gaussian' or 'poisson'"),
        (lambda: O.Denoising(S, noise="poisson"), DiffcoreError, "needs a finite rate > 0"),
        (lambda: O.Denoising((16, 16)), ShapeError, r"x_shape must be \(C, H, W\)"),
        (lambda: O.Inpainting(S, mask=torch.ones(8, 8)), ShapeError, r"expected \(16, 16\) or \(3, 16, 16\)"),
        (lambda: O.Inpainting(S, box=(10, 10, 8, 8)), DiffcoreError, "must lie inside the 16x16 image"),
        (lambda: O.Inpainting(S), DiffcoreError, "exactly one of box, fraction or mask"),
        (lambda: O.Inpainting(S, box=(0, 0, 2, 2), fraction=0.5), DiffcoreError, "exactly one of box, fraction or mask"),
        (lambda: O.Inpainting(S, fraction=1.5), DiffcoreError, r"fraction .* must be in \[0, 1\)"),
        (lambda: O.Inpainting(S, mask=torch.zeros(16, 16)), DiffcoreError, "observes no pixel"),
        (lambda: O.Inpainting(S, mask="no/such/mask.png"), DiffcoreError, "cannot read image"),
        (lambda: O.super_resolution(S, factor=3), ShapeError, "factor 3 does not divide the image size 16x16"),
        (lambda: O.super_resolution(S, factor=0), DiffcoreError, "factor must be a positive int"),
        (lambda: O.super_resolution(S, factor=2, mode="lanczos"), DiffcoreError, "unknown super-resolution mode 'lanczos'"),
        (lambda: O.blur(S, sigma=-1.0), DiffcoreError, "sigma must be a finite number > 0"),
        (lambda: O.blur(S, sigma=1.0, size=4), DiffcoreError, "size must be a positive odd int"),
        (lambda: O.blur(S, kernel=torch.ones(17, 3)), ShapeError, "larger than the 16x16 image"),
        (lambda: O.blur(S, kernel=torch.ones(3)), ShapeError, "expected a 2-D"),
        (lambda: O.blur(S, kernel=torch.ones(3, 3), sigma=1.0), DiffcoreError, "either kernel= or sigma="),
        (lambda: O.motion_blur(S, length=0.5), DiffcoreError, "length must be >= 1"),
        (lambda: O.Colorization((1, 16, 16)), ShapeError, "needs a colour image"),
        (lambda: O.CompressedSensing(S, ratio=0.0), DiffcoreError, r"ratio .* must be in \(0, 1\]"),
        (lambda: O.MRI(S, mask="spiral"), DiffcoreError, "unknown MRI mask 'spiral'"),
        (lambda: O.MRI(S, mask=torch.ones(8, 8)), ShapeError, r"expected \(16, 16\)"),
        (lambda: O.MRI(S, acceleration=0.5), DiffcoreError, "acceleration must be >= 1"),
        (lambda: O.MRI(S, mask="radial", lines=0), DiffcoreError, "lines must be a positive int"),
        (lambda: O.CT(S, angles=0), DiffcoreError, "angles .* must be a positive int"),
        (lambda: O.PhaseRetrieval(S, oversampling=0), DiffcoreError, "oversampling must be an int >= 1"),
        (lambda: O.JPEG(S, quality=0), DiffcoreError, r"quality must be an int in \[1, 100\]"),
        (lambda: O.JPEG((2, 16, 16)), ShapeError, "gray .* or RGB"),
    ],
)
def test_bad_options(build, error, message):
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize("name", ["inpaint", "denoise", "sr", "blur", "motion", "colorize", "cs", "mri", "ct", "phase", "jpeg"])
def test_wrong_image_size_names_the_expected_shape(name):
    options = {"inpaint": {"box": (0, 0, 4, 4)}, "ct": {"angles": 3}}.get(name, {})
    op = diffcore.create("operator", name, x_shape=S, **options)
    with pytest.raises(ShapeError, match=r"x has shape \(1, 3, 8, 8\); expected \(N, 3, 16, 16\)"):
        op.A(torch.zeros(1, 3, 8, 8))


def test_wrong_measurement_size():
    op = O.AveragePooling(S, factor=4)
    with pytest.raises(ShapeError, match=r"y has shape \(1, 3, 8, 8\); expected \(N, 3, 4, 4\)"):
        op.A_pinv(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ShapeError, match="expected"):
        O.MRI(S).A_adjoint(torch.zeros(1, 3, 16, 16))


def test_nonlinear_operators_have_no_adjoint():
    for op in (O.PhaseRetrieval(S), O.JPEG(S)):
        assert not hasattr(op, "A_adjoint") and not hasattr(op, "Vt")


def test_operators_without_svd_say_which_solvers_need_one():
    with pytest.raises(DiffcoreError, match="has no SVD; solvers that need one"):
        O.CT(S).singulars()
