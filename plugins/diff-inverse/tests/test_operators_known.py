"""Known answers of each operator (exact oracles where one exists)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from diff_inverse import operators as O
from diff_inverse.operators import functional as F

torch.set_num_threads(1)


def _rand(*shape, seed=0, dtype=torch.float64):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


def test_average_pooling_of_a_constant_is_the_constant():
    op = O.AveragePooling((3, 12, 12), factor=3)
    x = torch.full((2, 3, 12, 12), 0.37, dtype=torch.float64)
    assert torch.allclose(op.A(x), torch.full((2, 3, 4, 4), 0.37, dtype=torch.float64))
    assert torch.allclose(op.A_pinv(op.A(x)), x)
    x = _rand(2, 3, 12, 12)
    assert torch.allclose(op.A(x), torch.nn.functional.avg_pool2d(x, 3))
    assert torch.allclose(op.singulars(), torch.full((48,), 1 / 3, dtype=torch.float64))


def test_bicubic_matches_torch_antialiased_resize():
    x = _rand(2, 3, 16, 24)
    for factor in (2, 4):
        op = O.Bicubic((3, 16, 24), factor=factor)
        ref = torch.nn.functional.interpolate(x, size=(16 // factor, 24 // factor), mode="bicubic", antialias=True, align_corners=False)
        assert torch.allclose(op.A(x), ref, atol=1e-10)
        assert op.singulars().numel() == 3 * (16 // factor) * (24 // factor)  # k = C (H/f) (W/f), paired first


def test_inpainting_keeps_observed_pixels_and_zeros_the_rest():
    op = O.Inpainting((3, 8, 8), box=(2, 3, 4, 2))
    x = _rand(2, 3, 8, 8)
    y = op.A(x)
    hole = torch.zeros(8, 8, dtype=torch.bool)
    hole[2:6, 3:5] = True
    assert torch.equal(y[..., ~hole], x[..., ~hole]) and (y[..., hole] == 0).all()
    assert op.singulars().numel() == 3 * (64 - 8)
    assert torch.equal(op.Vt(x)[:, : 3 * 56], x[..., ~hole[None].expand(3, 8, 8)].reshape(2, -1)), (
        "observed entries come first, in raster order"
    )
    random = O.Inpainting((1, 10, 10), fraction=0.3, seed=5)
    assert int(random.mask.sum()) == 70 and torch.equal(random.mask, O.Inpainting((1, 10, 10), fraction=0.3, seed=5).mask)


def test_inpainting_mask_image_file(tmp_path):
    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[:, :4] = 255  # left half observed
    Image.fromarray(pixels).save(tmp_path / "mask.png")
    op = O.Inpainting((3, 8, 8), mask=tmp_path / "mask.png")
    assert op.mask[:, :, :4].all() and not op.mask[:, :, 4:].any()
    assert torch.equal(O.Inpainting((3, 8, 8), mask=str(tmp_path / "mask.png")).mask, op.mask)


def test_colorization_of_a_gray_image():
    gray = _rand(2, 1, 8, 8)
    op = O.Colorization((3, 8, 8))
    x = gray.expand(2, 3, 8, 8)
    assert torch.allclose(op.A(x), gray)
    assert torch.allclose(op.A_pinv(gray), x)  # the gray image is the minimum-norm preimage
    assert torch.allclose(op.singulars(), torch.full((64,), 1 / math.sqrt(3), dtype=torch.float64))
    assert torch.allclose(op.Vt(x)[:, :64], math.sqrt(3) * gray.reshape(2, -1)), "first coordinate per pixel is <x, (1,1,1)/sqrt(3)>"


def test_mri_full_mask_is_the_unitary_fft():
    op = O.MRI((2, 8, 8), mask=torch.ones(8, 8))
    x = _rand(3, 2, 8, 8)
    y = op.A(x)
    assert y.shape == (3, 2, 8, 8, 2)
    assert torch.allclose(torch.view_as_complex(y.contiguous()), torch.fft.fft2(x, norm="ortho"))
    assert torch.allclose(op.A_pinv(y), x)
    assert torch.allclose(y.norm(), x.norm())


def test_mri_svd_pairs_conjugate_frequencies():
    op = O.MRI((1, 8, 8), mask="equispaced", acceleration=2, center_fraction=0.25)
    assert torch.allclose(op.singulars(), torch.ones_like(op.singulars()))
    assert op.singulars().numel() == int(op.mask.sum()), "one real coordinate per sampled frequency"
    x = _rand(2, 1, 8, 8)
    assert torch.allclose(
        op.A_pinv(op.A(x)), op.V(torch.cat([op.Vt(x)[:, : int(op.mask.sum())], torch.zeros(2, 64 - int(op.mask.sum()), dtype=x.dtype)], 1))
    )


def test_fft_blur_svd_singulars_are_the_spectrum_magnitudes():
    kernel = torch.rand(3, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    op = O.ConvolutionBlur((1, 8, 8), kernel=kernel, rcond=0.0)
    expected = F.kernel_spectrum(kernel, 8, 8).abs().reshape(-1).sort().values
    assert torch.allclose(op.singulars().sort().values, expected)


def test_mri_masks():
    m = F.line_mask(32, 32, 4, 0.125, "equispaced")
    assert m[:, 0].all() and m[:, :2].all(), "the centre (DC) column and its neighbours are sampled"
    assert torch.equal(m, F.hermitian_symmetric(m))
    frac = float(F.line_mask(64, 64, 4, 0.08, "random", seed=1).float().mean())
    assert 0.15 < frac < 0.45
    radial = F.radial_mask(32, 32, 8)
    assert radial[0, 0] and 0.05 < float(radial.float().mean()) < 0.6


def test_ct_of_a_centred_disk_is_rotation_invariant():
    h = 32
    r = torch.cdist(
        torch.cartesian_prod(torch.arange(h), torch.arange(h)).double(), torch.tensor([[(h - 1) / 2] * 2], dtype=torch.float64)
    ).reshape(h, h)
    disk = (8 - r + 0.5).clamp(0, 1)[None, None]
    op = O.CT((1, h, h), angles=12)
    p = op.A(disk)[0, 0]
    assert torch.allclose(p.sum(1), disk.sum().expand(12)), "every view keeps the total mass"
    assert float((p - p.mean(0)).abs().max() / p.max()) < 0.03
    centre = (op.y_shape[-1] - 1) // 2
    assert abs(float(p[:, centre].mean()) - 16) < 0.5, "the central ray crosses the diameter, 16 pixels"


def test_ct_pinv_recovers_with_enough_views():
    op = O.CT((1, 8, 8), angles=16, cg_steps=200)
    x = _rand(1, 1, 8, 8)
    assert torch.allclose(op.A_pinv(op.A(x)), x, atol=1e-3)


def test_blur_of_a_delta_gives_the_kernel():
    kernel = torch.rand(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    op = O.ConvolutionBlur((1, 16, 16), kernel=kernel, rcond=0.0)
    delta = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    delta[..., 8, 8] = 1
    y = op.A(delta)[0, 0]
    assert torch.allclose(y[6:11, 7:10], kernel, atol=1e-12) and float(y.abs().sum()) == pytest.approx(float(kernel.sum()))
    gauss = O.GaussianBlur((1, 16, 16), sigma=1.0, size=5)
    y = gauss.A(delta)[0, 0]
    k1 = F.gaussian_kernel_1d(1.0, 5)
    assert torch.allclose(y[6:11, 6:11], torch.outer(k1, k1), atol=1e-4)  # truncated at rcond=1e-4
    assert torch.allclose(gauss.apply_direct(delta)[0, 0, 6:11, 6:11], torch.outer(k1, k1), atol=1e-12)


def test_blur_kernel_files(tmp_path):
    kernel = np.array([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])
    np.save(tmp_path / "k.npy", kernel)
    Image.fromarray((kernel * 4 * 255).astype(np.uint8)).save(tmp_path / "k.png")
    for path in ("k.npy", "k.png"):
        op = O.blur((1, 8, 8), kernel=tmp_path / path)
        assert torch.allclose(op.kernel, torch.as_tensor(kernel)), path


def test_motion_kernel():
    k = F.motion_kernel(7, 0)
    assert k.sum().item() == pytest.approx(1.0)
    c = k.shape[0] // 2
    assert float(k[c].sum()) == pytest.approx(1.0), "a horizontal streak stays on the centre row"
    k90 = F.motion_kernel(7, 90)
    assert torch.allclose(k90, k.T, atol=1e-12)


def test_phase_retrieval_ignores_sign_and_keeps_energy():
    op = O.PhaseRetrieval((1, 8, 8), oversampling=2)
    x = _rand(2, 1, 8, 8)
    y = op.A(x)
    assert y.shape == (2, 1, 16, 16) and (y >= 0).all()
    assert torch.allclose(op.A(-x), y)
    assert torch.allclose(y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))  # Parseval, ortho FFT
    assert torch.allclose(op.A(x.flip(-1, -2)), y)  # the twin image: a point reflection changes only the phase


def test_phase_retrieval_is_differentiable():
    op = O.PhaseRetrieval((1, 8, 8))
    x = _rand(1, 1, 8, 8).requires_grad_()
    op.A(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_jpeg_quality_orders_the_error():
    img = torch.linspace(-1, 1, 32, dtype=torch.float64).expand(1, 3, 32, 32).clone()
    img[:, 1] = img[:, 1].flip(-1)
    errors = [float((O.JPEG((3, 32, 32), quality=q).A(img) - img).abs().mean()) for q in (5, 50, 100)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.02
    gray = O.JPEG((1, 32, 32), quality=90).A(img[:, :1])
    assert gray.shape == (1, 1, 32, 32) and gray.dtype == torch.float64


def test_poisson_noise():
    op = O.Denoising((1, 32, 32), noise="poisson", rate=1000.0)
    x = torch.zeros(4, 1, 32, 32, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    y = op.measure(x, generator=g)
    assert torch.equal(y, op.measure(x, generator=torch.Generator().manual_seed(0)))
    counts = (y + 1) / 2 * 1000  # intensity 0.5 -> Poisson(500)
    assert torch.allclose(counts, counts.round()) and abs(float(counts.mean()) - 500) < 3
    assert abs(float(counts.var()) - 500) < 40
    noisy = O.Denoising((1, 32, 32), sigma_y=0.2).measure(x, generator=g)
    assert abs(float(noisy.std()) - 0.2) < 0.01


LINEAR = [
    lambda: O.Inpainting((2, 8, 8), fraction=0.5),
    lambda: O.Denoising((2, 8, 8)),
    lambda: O.AveragePooling((2, 8, 8), factor=2),
    lambda: O.Bicubic((2, 8, 8), factor=2),
    lambda: O.GaussianBlur((2, 8, 8), sigma=1.0),
    lambda: O.ConvolutionBlur((2, 8, 8), kernel=torch.rand(3, 3, generator=torch.Generator().manual_seed(0))),
    lambda: O.Colorization((3, 8, 8)),
    lambda: O.CompressedSensing((2, 8, 8), ratio=0.5),
    lambda: O.MRI((2, 8, 8)),
    lambda: O.CT((2, 8, 8), angles=4),
]


@pytest.mark.parametrize("build", LINEAR)
def test_autograd_through_A_gives_the_adjoint(build):
    """DPS differentiates ||y - A x||^2: its gradient must be 2 A^T (A x - y)."""
    op = build()
    x = _rand(2, *op.x_shape, seed=3).requires_grad_()
    y = op.A(_rand(2, *op.x_shape, seed=4)).detach()
    ((op.A(x) - y) ** 2).sum().backward()
    assert torch.allclose(x.grad, 2 * op.A_adjoint(op.A(x.detach()) - y), atol=1e-10)


def test_noise_stays_off_unobserved_entries():
    g = torch.Generator().manual_seed(0)
    inpaint = O.Inpainting((1, 8, 8), box=(0, 0, 4, 8), sigma_y=0.5)
    assert (inpaint.measure(_rand(1, 1, 8, 8), generator=g)[..., :4, :] == 0).all()
    mri = O.MRI((1, 8, 8), mask="equispaced", sigma_y=0.5)
    y = mri.measure(_rand(1, 1, 8, 8), generator=g)
    assert (y[..., ~mri.mask, :] == 0).all() and (y[..., mri.mask, :] != 0).any()


def test_options_from_a_spec_string():
    import diffcore

    op = diffcore.create("operator", "inpaint:box=(1,2,3,4)", x_shape=(1, 8, 8))
    assert int((~op.mask).sum()) == 12
    assert diffcore.create("operator", "sr:factor=2,mode=bicubic", x_shape=(3, 8, 8)).y_shape == (3, 4, 4)
