"""The image bench's solvers make no host-device synchronisation inside their step loops.

On the CPU every method that reads a tensor's value back to Python (``item``, ``float()``,
``bool()``, ``tolist``, a boolean-mask index: on CUDA each one waits for the device) is counted
from the first network call to the end of the solve (set-up before it is allowed), outside the
prior's own ``predict`` (:class:`diffcore.devices.HostReads`). The prior is a small random
``UNet2DModel`` at 16x16, so the checks take seconds. On CUDA the same solves run under
``torch.cuda.set_sync_debug_mode("error")`` from the first network call on.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

import diffcore
from diff_inverse.solve import solve
from diffcore.devices import HostReads
from diffcore.priors.wrapper import PriorWrapper
from diffcore.testing import watch_reads

torch.set_num_threads(1)

# the solvers of the image bench, with the options that take another path through the loop
SOLVERS = (
    "ddrm",
    "ddnm",
    "ddnm+",
    "pigdm",
    "pigdm:bound=true",
    "dps",
    "dps:step=ddpm",
    "mcg",
    "red-diff",
    "diffpir",
    "daps",
    "daps:ode_steps=2",
    "ilvr",
)
# one operator with an SVD (the spectral paths; inpainting and deblurring take the same ones) and one without (CT:
# conjugate gradients, A_pinv, DAPS's Langevin steps)
OPERATORS = {"sr": {"factor": 2}, "ct": {"angles": 8}}


class Quiet:
    """The operator with its own reads left out of the count: the CT operator's projections read their
    geometry back (``tolist``) inside ``A`` and ``A_adjoint``, which is the operator's business, not the loop's."""

    def __init__(self, operator, counter: HostReads):
        self._operator, self._counter = operator, counter

    def __getattr__(self, name):
        value = getattr(self._operator, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            with self._counter.paused():
                return value(*args, **kwargs)

        return call


# torch.optim.Adam (RED-Diff) reads its step count with item(): a CPU tensor unless capturable, so no device sync
HOST_ONLY = ("torch.optim",)


@pytest.fixture(scope="module")
def prior():
    from diff_zoo.recipes import RECIPES
    from diff_zoo.train import build_unet
    from diffcore.adapters.diffusers_prior import DiffusersUNetPrior

    r = RECIPES["patches"]
    tiny = dataclasses.replace(r, unet=dataclasses.replace(r.unet, block_out_channels=(8, 16, 16), sample_size=16))
    return DiffusersUNetPrior(build_unet(tiny, 0).eval().requires_grad_(False), tiny.schedule.scheduler_config(), owned=True)


def _solve(prior, solver, operator, sigma_y, device="cpu"):
    op = diffcore.create("operator", operator, x_shape=tuple(prior.sample_shape), sigma_y=sigma_y, **OPERATORS[operator])
    truth = torch.rand((2, *prior.sample_shape), generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    y = op.measure(truth, torch.Generator().manual_seed(1))
    return op, y


@pytest.mark.parametrize("sigma_y", (0.0, 0.05))
@pytest.mark.parametrize("solver", SOLVERS)
def test_solver_loop_reads_nothing_back(prior, solver, sigma_y):
    ran = 0
    for operator in OPERATORS:
        op, y = _solve(prior, solver, operator, sigma_y)
        with HostReads() as counter, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            watched = watch_reads(prior, counter)
            if operator == "ct":
                op = Quiet(op, counter)
            try:
                x = solve(watched, op, y, solver=solver, steps=3, generator=torch.Generator().manual_seed(0))
            except diffcore.errors.DiffcoreError:  # the solver does not take this operator
                continue
        ran += 1
        assert watched.calls >= 2 and x.shape == y.shape[:1] + tuple(prior.sample_shape)
        assert [r for r in watched.loop_reads if not r.module.startswith(HOST_ONLY)] == [], operator
    assert ran >= 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("solver", ("ddrm", "ddnm+", "pigdm", "dps", "mcg", "diffpir", "daps"))
def test_solver_loop_does_not_synchronise_on_cuda(prior, solver):
    """From the first network call on (set-up may synchronise), under ``set_sync_debug_mode("error")``; the prior's own call is exempt."""
    net = prior.network.to("cuda")
    cuda = type(prior)(net, prior.scheduler_config, owned=True)

    class Strict(PriorWrapper):
        def predict(self, x_t, t, cond=None):
            torch.cuda.set_sync_debug_mode(0)
            try:
                return self.prior.predict(x_t, t, cond)
            finally:
                torch.cuda.set_sync_debug_mode("error")

    op, y = _solve(cuda, solver, "sr", 0.05, device="cuda")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = solve(Strict(cuda), op, y, solver=solver, steps=4, generator=torch.Generator(device="cuda").manual_seed(0))
    finally:
        torch.cuda.set_sync_debug_mode(0)
        prior.network.to("cpu")
    assert x.device.type == "cuda" and bool(torch.isfinite(x).all())


def test_solve_compile_falls_back_on_the_cpu_with_the_same_result(prior):
    from diffcore.devices import SpeedWarning

    op, y = _solve(prior, "ddrm", "sr", 0.05)
    plain = solve(prior, op, y, solver="ddrm", steps=3, generator=torch.Generator().manual_seed(0))
    with pytest.warns(SpeedWarning, match="need a CUDA device"):
        x = solve(prior, op, y, solver="ddrm", steps=3, generator=torch.Generator().manual_seed(0), compile=True)
    assert torch.equal(x, plain)
    with_layout = solve(prior, op, y, solver="dps", steps=3, generator=torch.Generator().manual_seed(0), channels_last=True)
    dps = solve(prior, op, y, solver="dps", steps=3, generator=torch.Generator().manual_seed(0))
    assert float((with_layout - dps).abs().max()) < 1e-4  # the backward pass through a channels-last network too
