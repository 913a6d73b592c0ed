"""One rule for which solver fits which operator (``diff_inverse.solvers.fits``), read from what each
solver declares, and used by ``solvers_for``, ``solve``, the solvers' own checks and the image
benchmark alike, for diff-inverse's solvers and a plugin's."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import diff_inverse.plugin
import diffcore
from diff_inverse.bench.images import not_applicable
from diff_inverse.operators import JPEG, DenseLinear, PhaseRetrieval
from diff_inverse.operators.base import LinearOperator
from diff_inverse.solve import solve
from diff_inverse.solvers import DDNM, DDRM, fits, refusal, solvers_for
from diffcore import hookimpl, plugin_host
from diffcore.errors import DiffcoreError
from diffcore.plugin_host import PluginHost

torch.set_num_threads(1)


@dataclass(frozen=True)
class SVDOnly:
    """Declares that it needs the operator's SVD: returns V diag(1/s) U^T y"""

    name = "svd-only"
    needs_svd = True

    def __call__(self, prior, operator, y, *, steps, generator=None):
        s = operator.singulars().to(y)
        c = torch.zeros(y.shape[0], *prior.sample_shape, dtype=y.dtype).flatten(1)
        c[:, : s.numel()] = operator.Ut(y) / s
        return operator.V(c)


@dataclass(frozen=True)
class Undeclared:
    """Declares nothing: gradient descent on |y - A(x)|^2 through autograd"""

    lr: float = 0.2

    def __call__(self, prior, operator, y, *, steps, generator=None):
        x = torch.zeros(y.shape[0], *prior.sample_shape, dtype=y.dtype, requires_grad=True)
        for _ in range(steps):
            (grad,) = torch.autograd.grad(((operator.A(x) - y) ** 2).sum(), x)
            x = (x - self.lr * grad).detach().requires_grad_(True)
        return x.detach()


class FitPlugin:
    @staticmethod
    @hookimpl
    def register_solvers(register):
        register("svd-only", SVDOnly)
        register("undeclared", Undeclared)


class EntryPoint:
    def __init__(self, name, plugin):
        self.name, self.value, self._plugin = name, f"<in memory {name}>", plugin

    def load(self):
        return self._plugin


@pytest.fixture(autouse=True)
def with_fit_plugin(monkeypatch):
    """The process-wide plugin host: diffcore, diff-inverse and the test plugin."""
    host = PluginHost(entry_points=[EntryPoint("inverse", diff_inverse.plugin), EntryPoint("fit-test", FitPlugin)])
    assert host.infos["fit-test"].error is None and host.infos["inverse"].error is None
    monkeypatch.setattr(plugin_host, "_host", host)


class NoSVD(LinearOperator):
    """A linear operator with A, adjoint and pinv but no SVD."""

    def __init__(self, matrix, sigma_y=0.0):
        super().__init__((matrix.shape[1],), (matrix.shape[0],), sigma_y)
        self.matrix = matrix

    def A(self, x):
        return x @ self.matrix.T.to(x)

    def A_adjoint(self, y):
        return y @ self.matrix.to(y)

    def A_pinv(self, y):
        return y @ torch.linalg.pinv(self.matrix).T.to(y)


MATRIX = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, -0.5]], dtype=torch.float64)
BUILTIN = [
    "daps",
    "ddnm",
    "ddnm+",
    "ddrm",
    "diffpir",
    "dps",
    "ilvr",
    "langevin",
    "mcg",
    "mcgdiff",
    "pigdm",
    "projection",
    "red-diff",
    "snips",
]
WITH_SVD = {"ddnm+", "ddrm", "mcgdiff", "projection", "snips", "svd-only"}
NOISELESS = {"ddnm", "ilvr", "projection"}
GRADIENT = {"daps", "dps", "red-diff", "undeclared"}  # need a differentiable A: what the solver declares, or nothing
SVD_WHEN_NOISY = {"pigdm"}

# operator -> the solvers that fit it, written out by hand from the solvers' declarations
CASES = {
    "dense, noiseless": (lambda: DenseLinear(MATRIX), sorted([*BUILTIN, "svd-only", "undeclared"])),
    "dense, noisy": (lambda: DenseLinear(MATRIX, sigma_y=0.1), sorted({*BUILTIN, "svd-only", "undeclared"} - NOISELESS)),
    "no svd, noiseless": (lambda: NoSVD(MATRIX), sorted({*BUILTIN, "undeclared"} - WITH_SVD)),
    "no svd, noisy": (lambda: NoSVD(MATRIX, sigma_y=0.1), sorted({*BUILTIN, "undeclared"} - WITH_SVD - NOISELESS - SVD_WHEN_NOISY)),
    "phase": (lambda: PhaseRetrieval((1, 4, 4)), sorted(GRADIENT)),
    "jpeg": (lambda: JPEG((1, 8, 8), quality=50), sorted(GRADIENT)),  # through its straight-through gradient
    "jpeg, no gradient": (lambda: JPEG((1, 8, 8), quality=50, gradient="none"), []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_solvers_for_lists_the_registered_solvers_that_fit_a_plugins_too(case):
    make, expected = CASES[case]
    assert solvers_for(make()) == expected


def test_the_reasons_follow_the_declarations():
    noisy, plain, jpeg = DenseLinear(MATRIX, sigma_y=0.1), NoSVD(MATRIX), JPEG((1, 8, 8), gradient="none")
    assert fits(SVDOnly(), plain) == "needs an SVD" and fits(SVDOnly, plain) == "needs an SVD"  # instance or class
    assert fits(Undeclared(), jpeg) == "needs a differentiable operator" and fits(Undeclared(), plain) is None
    assert fits(DDNM(), jpeg) == "needs a linear operator"
    assert fits(DDNM(), noisy) == "assumes noiseless y" and fits(DDNM(), noisy, strict=False) is None
    assert solvers_for(noisy, strict=False) == CASES["dense, noiseless"][1]
    pigdm = diffcore.create("solver", "pigdm")  # its noisy-y step is written in the SVD's coordinates
    assert fits(pigdm, plain) is None and fits(pigdm, noisy) is None
    assert fits(pigdm, NoSVD(MATRIX, sigma_y=0.1)) == fits(pigdm, NoSVD(MATRIX, sigma_y=0.1), strict=False) == "needs an SVD for noisy y"


def test_pigdm_on_noisy_y_without_an_svd_is_refused_before_any_work():
    prior = diffcore.create("prior", "gaussian", mean=[0.0, 0.0, 0.0])
    op = NoSVD(MATRIX, sigma_y=0.1)
    with pytest.raises(
        DiffcoreError, match=r"^solver 'pigdm' needs an operator with an SVD for noisy y; NoSVD has none and sigma_y = 0.1\. "
    ):
        solve(prior, op, torch.ones(2, 2, dtype=torch.float64), solver="pigdm", steps=3)
    assert not_applicable("pigdm", diffcore.create("solver", "pigdm"), op) == "needs an SVD for noisy y"


def test_solve_refuses_a_misfit_with_the_message_the_bench_records_the_reason_of():
    prior = diffcore.create("prior", "gaussian", mean=[0.0, 0.0, 0.0])
    plain = NoSVD(MATRIX)
    y = torch.ones(2, 2, dtype=torch.float64)
    reason = not_applicable("svd-only", diffcore.create("solver", "svd-only"), plain)
    assert reason == "needs an SVD"
    with pytest.raises(DiffcoreError) as err:
        solve(prior, plain, y, solver="svd-only", steps=3)
    assert str(err.value) == refusal("svd-only", plain, reason)
    fit = ", ".join(CASES["no svd, noiseless"][1])
    assert str(err.value) == f"solver 'svd-only' needs an operator with an SVD; NoSVD has none. Solvers that fit it: {fit}"
    with pytest.raises(DiffcoreError) as builtin_err:  # a built-in solver's own check says the same, naming the plugin's solver
        DDRM()(prior, plain, y, steps=3)
    assert str(builtin_err.value) == refusal("ddrm", plain, "needs an SVD") and "undeclared" in str(builtin_err.value)

    image_prior = diffcore.create("prior", "gaussian", mean=[0.0] * 64, shape=(1, 8, 8))
    jpeg = JPEG((1, 8, 8), quality=50, gradient="none")
    y = jpeg.A(torch.zeros(1, 1, 8, 8))
    assert not_applicable("undeclared", Undeclared(), jpeg) == "needs a differentiable operator"
    with pytest.raises(
        DiffcoreError,
        match=r"^solver 'undeclared' needs a differentiable operator; JPEG is not differentiable .*No registered solver fits it yet$",
    ):
        solve(image_prior, jpeg, y, solver="undeclared", steps=3)


def test_solve_runs_what_fits():
    prior = diffcore.create("prior", "gaussian", mean=[0.0, 0.0, 0.0])
    dense = DenseLinear(MATRIX)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = dense.A(x)
    for name in ("svd-only", "undeclared"):  # both land on y (A has full row rank)
        assert torch.allclose(dense.A(solve(prior, dense, y, solver=name, steps=200)), y, atol=1e-6), name
    noisy = DenseLinear(MATRIX, sigma_y=0.1)
    with pytest.warns(UserWarning, match="assumes noiseless y"):
        out = solve(prior, noisy, y, solver="ddnm", steps=5, generator=torch.Generator().manual_seed(0))  # taken as noiseless
    assert out.shape == (4, 3) and torch.allclose(noisy.A(out), y, atol=1e-6)
