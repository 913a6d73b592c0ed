"""Solver options are typed and checked; DPS's operator gain fails loudly; noiseless-only solvers warn on noisy y."""

import dataclasses
import types
import typing
import warnings

import pytest
import torch

import diffcore
from diff_inverse.operators import DenseLinear
from diff_inverse.operators.base import LinearOperator
from diff_inverse.solve import solve
from diff_inverse.solvers import SOLVERS
from diff_inverse.solvers.dps import operator_gain
from diff_inverse.solvers.fit import SolverWarning
from diffcore.errors import DiffcoreError

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("ddrm:snap=off", "solver 'ddrm': option snap must be true or false, got 'off'"),
        ("pigdm:bound=flase", "solver 'pigdm': option bound must be true or false, got 'flase'"),
        ("dps:discrepancy=1", "solver 'dps': option discrepancy must be true or false, got 1"),
        ("dps:step=ddpn", "solver 'dps': option step must be one of 'ddim', 'ddpm', got 'ddpn'"),
        ("ddrm:etaA=1.5", "solver 'ddrm': option etaA must be a number in [0, 1], got 1.5"),
        ("ddrm:etaC=high", "solver 'ddrm': option etaC must be a number in [0, 1] or None, got 'high'"),
        ("mcgdiff:particles=0", "solver 'mcgdiff': option particles must be an integer >= 1, got 0"),
        ("mcgdiff:particles=2.5", "solver 'mcgdiff': option particles must be an integer >= 1, got 2.5"),
        ("red-diff:init=zeros", "solver 'red-diff': option init must be one of 'auto', 'pinv', 'tikhonov', 'noise', got 'zeros'"),
        ("red-diff:t_max=0", "solver 'red-diff': option t_max must be a number in (0, 1] or None, got 0"),
        ("projection:resample=true", "solver 'projection': option resample must be an integer >= 1, got True"),
        ("dps:zeta=nan", "solver 'dps': option zeta must be a number >= 0 or None, got 'nan'"),
    ],
)
def test_a_wrong_option_value_is_a_one_line_error_naming_what_is_accepted(spec, message):
    with pytest.raises(DiffcoreError) as info:
        diffcore.create("solver", spec)
    assert str(info.value) == message


def test_every_option_of_every_solver_is_typed_and_its_default_passes():
    """Each option has an annotation the checker reads (bool, int, float, Literal, or None with one of them),
    and each solver builds with its defaults and with every bool option flipped."""
    for name, cls in SOLVERS.items():
        hints = typing.get_type_hints(cls)
        solver = cls()
        for f in dataclasses.fields(solver):
            hint = hints[f.name]
            kinds = (
                [a for a in typing.get_args(hint) if a is not type(None)]
                if typing.get_origin(hint) in (typing.Union, types.UnionType)
                else [hint]
            )
            assert all(k in (bool, int, float) or typing.get_origin(k) is typing.Literal for k in kinds), (name, f.name, hints[f.name])
            if hints[f.name] is bool:
                assert getattr(cls(**{f.name: not getattr(solver, f.name)}), f.name) is (not getattr(solver, f.name))
                with pytest.raises(DiffcoreError, match=f"option {f.name} must be true or false"):
                    cls(**{f.name: "no"})


def test_the_spec_spellings_of_booleans_still_work():
    assert diffcore.create("solver", "ddrm:snap=false").snap is False
    assert diffcore.create("solver", "pigdm:bound=true,bound_snr=0").bound is True
    assert diffcore.create("solver", "dps:zeta=none").zeta is None


class _Matrix(LinearOperator):
    def __init__(self, m, adjoint=True, broken=False):
        super().__init__((m.shape[1],), (m.shape[0],), 0.0)
        self.m, self.adjoint, self.broken = m, adjoint, broken

    def A(self, x):
        if self.broken:
            raise RuntimeError("the detector is unplugged")
        return x @ self.m.T.to(x)

    def A_adjoint(self, y):
        if not self.adjoint:
            raise NotImplementedError("no adjoint")
        return y @ self.m.to(y)


def test_operator_gain_fails_loudly_and_warns_once_when_it_cannot_measure():
    m = 5.0 * torch.eye(3, dtype=torch.float64)
    like = torch.zeros(1, 3, dtype=torch.float64)
    assert operator_gain(_Matrix(m), like) == pytest.approx(5.0)
    with pytest.raises(RuntimeError, match="unplugged"):  # a broken operator is not taken as gain 1
        operator_gain(_Matrix(m, broken=True), like)
    with pytest.raises(DiffcoreError, match="broken"):
        operator_gain(_Matrix(torch.full((3, 3), float("nan"), dtype=torch.float64)), like)
    no_adjoint = _Matrix(m, adjoint=False)
    with pytest.warns(SolverWarning, match="no A_adjoint.*takes it as 1"):
        assert operator_gain(no_adjoint, like) == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert operator_gain(no_adjoint, like) == 1.0  # said once per operator


def test_plain_ddnm_on_noisy_y_warns_and_names_ddnm_plus():
    """Plain DDNM puts A^+ y into x0 at every step: noisy y's noise is fitted and amplified by small
    singular values. solve warns and names ddnm+; noiseless y runs silently."""
    prior = diffcore.create("prior", "gaussian", mean=[0.0, 0.0])
    op = DenseLinear(torch.tensor([[1.0, 0.0]], dtype=torch.float64), sigma_y=0.2)
    y = torch.ones(4, 1, dtype=torch.float64)
    with pytest.warns(SolverWarning, match=r"solver 'ddnm' assumes noiseless y, but sigma_y = 0.2.*use 'ddnm\+'"):
        solve(prior, op, y, solver="ddnm", steps=5, generator=torch.Generator().manual_seed(0))
    with pytest.warns(SolverWarning, match=r"solver 'projection' assumes noiseless y.*use 'daps' or 'ddnm\+' or 'ddrm'"):
        solve(prior, op, y, solver="projection", steps=5, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solve(prior, DenseLinear(op.matrix), y, solver="ddnm", steps=5, generator=torch.Generator().manual_seed(0))
