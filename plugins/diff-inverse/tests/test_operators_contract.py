"""The operator contract (diffcore.testing.check_operator) over every registered operator."""

import pytest
import torch

import diffcore
from diff_inverse.operators import LinearOperator
from diffcore.testing import check_operator

torch.set_num_threads(1)

# (registered name, x_shape, options, extra check_operator arguments)
CASES = [
    ("inpaint", (3, 16, 16), {"box": (4, 2, 6, 9)}, {}),
    ("inpaint", (1, 16, 16), {"fraction": 0.7, "seed": 3}, {}),
    ("inpaint", (3, 16, 16), {"mask": torch.rand(3, 16, 16) > 0.5}, {}),
    ("denoise", (3, 16, 16), {"sigma_y": 0.1}, {}),
    ("sr", (3, 16, 16), {"factor": 4}, {}),
    ("sr", (1, 12, 18), {"factor": 3}, {}),
    ("sr", (3, 16, 16), {"factor": 2, "mode": "bicubic"}, {}),
    ("sr", (1, 16, 24), {"factor": 4, "mode": "bicubic"}, {}),
    ("blur", (3, 16, 16), {"sigma": 1.5}, {}),
    ("blur", (1, 16, 20), {"sigma": 3.0, "size": 9}, {}),
    ("blur", (3, 16, 16), {"kernel": torch.rand(5, 3)}, {}),
    ("blur", (2, 15, 17), {"kernel": torch.rand(4, 6), "rcond": 0.0}, {}),
    ("motion", (1, 16, 16), {"length": 7, "angle": 30.0}, {}),
    ("colorize", (3, 16, 16), {}, {}),
    ("cs", (3, 16, 16), {"ratio": 0.3, "seed": 2}, {}),
    ("cs", (1, 8, 8), {"ratio": 1.0}, {}),
    ("mri", (1, 16, 16), {"mask": "random", "acceleration": 4, "center_fraction": 0.1}, {}),
    ("mri", (2, 16, 16), {"mask": "equispaced", "acceleration": 3}, {}),
    ("mri", (1, 16, 16), {"mask": "radial", "lines": 6}, {}),
    ("mri", (1, 15, 18), {"mask": "random", "seed": 4}, {}),
    ("ct", (1, 16, 16), {"angles": 8, "cg_steps": 100}, {"pinv_rtol": 3e-3}),
    ("ct", (2, 12, 12), {"angles": 5, "supersample": 1}, {"pinv_rtol": 3e-2}),
    ("phase", (1, 16, 16), {}, {}),
    ("jpeg", (3, 16, 16), {"quality": 50}, {}),
    ("dense", None, {"matrix": torch.randn(5, 8, generator=torch.Generator().manual_seed(0))}, {}),
]


def _build(name, x_shape, options):
    return diffcore.create("operator", name, **({"x_shape": x_shape} if x_shape else {}), **options)


@pytest.mark.parametrize(("name", "x_shape", "options", "extra"), CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_contract(name, x_shape, options, extra):
    op = _build(name, x_shape, options)
    check_operator(op, generator=torch.Generator().manual_seed(1), batch=2, **extra)
    if op.linear:  # float32 too, at float32 tolerances
        check_operator(op, batch=1, dtype=torch.float32, rtol=1e-4, pinv_rtol=max(extra.get("pinv_rtol", 0), 1e-3))


def test_every_registered_operator_is_covered():
    registered = {c.name for c in diffcore.available("operator") if c.plugin == "inverse"}
    assert registered >= {"inpaint", "denoise", "sr", "blur", "motion", "colorize", "cs", "mri", "ct", "phase", "jpeg", "dense"}
    assert registered - {"deepinv"} <= {case[0] for case in CASES}  # deepinv: test_operators_deepinv.py


def test_svd_flags():
    shapes = (3, 16, 16)
    with_svd = [
        diffcore.create("operator", n, x_shape=shapes, **o)
        for n, o in [
            ("inpaint", {"box": (0, 0, 4, 4)}),
            ("denoise", {}),
            ("sr", {"factor": 2}),
            ("sr", {"factor": 2, "mode": "bicubic"}),
            ("blur", {"sigma": 1.0}),
            ("blur", {"kernel": torch.ones(3, 3) / 9}),
            ("motion", {}),
            ("colorize", {}),
            ("cs", {"ratio": 0.5}),
            ("mri", {}),
        ]
    ]
    assert all(op.has_svd and op.linear for op in with_svd)
    ct = diffcore.create("operator", "ct", x_shape=shapes, angles=4)
    assert ct.linear and not ct.has_svd
    phase, jpeg = diffcore.create("operator", "phase", x_shape=shapes), diffcore.create("operator", "jpeg", x_shape=shapes)
    assert not phase.linear and phase.differentiable and not isinstance(phase, LinearOperator)
    assert not jpeg.linear and jpeg.differentiable  # its straight-through gradient
    assert not diffcore.create("operator", "jpeg", x_shape=shapes, gradient="none").differentiable


def test_jpeg_straight_through_gradient():
    """JPEG's value is the compressed image; its gradient is the identity's (gradient='none': no gradient)."""
    op = diffcore.create("operator", "jpeg", x_shape=(1, 16, 16), quality=10)
    x = (torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_(True)
    out = op.A(x)
    assert torch.allclose(out.detach(), op.A(x.detach()), atol=1e-6) and not torch.allclose(out.detach(), x.detach(), atol=1e-2)
    w = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    (grad,) = torch.autograd.grad((out * w).sum(), x)
    assert torch.equal(grad, w)


class _BrokenAdjoint(LinearOperator):
    def __init__(self):
        super().__init__((4,), (4,))

    def A(self, x):
        self.check_x(x)
        return x * torch.arange(1.0, 5.0, dtype=x.dtype)

    def A_adjoint(self, y):
        return y  # wrong: should scale like A

    def A_pinv(self, y):
        return y / torch.arange(1.0, 5.0, dtype=y.dtype)


class _BrokenSVD(_BrokenAdjoint):
    has_svd = True

    def A_adjoint(self, y):
        return y * torch.arange(1.0, 5.0, dtype=y.dtype)

    def singulars(self):
        return torch.arange(1.0, 5.0, dtype=torch.float64)

    def Vt(self, x):
        self.check_x(x)
        return x.flip(1)  # orthonormal but inconsistent with U and the singulars

    def V(self, c):
        return c.flip(1)

    def U(self, c):
        return c

    Ut = U


def test_check_operator_catches_broken_operators():
    with pytest.raises(AssertionError, match="not adjoint"):
        check_operator(_BrokenAdjoint())
    with pytest.raises(AssertionError, match=r"A\(x\) != U\(singulars"):
        check_operator(_BrokenSVD())
