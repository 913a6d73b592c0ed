"""Which solver fits which operator: one rule, read from what each solver declares.

A solver (the object ``diffcore.create("solver", name)`` returns, or its class, or any factory
registered through ``register_solvers``) may declare, as class attributes:

- ``needs_svd``: it uses the operator's SVD (``V``, ``Vt``, ``U``, ``Ut``, ``singulars``);
- ``needs_linear``: it uses ``A_adjoint`` / ``A_pinv``;
- ``needs_differentiable``: autograd goes through ``operator.A``. When not declared it is true
  unless the solver declares ``needs_linear`` or ``needs_svd`` (those work through the operator's
  linear algebra), so a solver that declares nothing is assumed to need a differentiable ``A``
  and nothing else;
- ``noiseless_only``: it takes y as noiseless (``sigma_y = 0``); false when not declared;
- ``needs_svd_when_noisy``: it needs the SVD only when y is noisy (ΠGDM: its noisy-y step weighs
  each singular direction by ``s / (r^2 s^2 + sigma_y^2)``); false when not declared.

:func:`fits` applies the rule, :func:`solvers_for` lists the registered solvers it admits (a
plugin's too), and :func:`refusal` is the message of every place that turns a misfit away:
``solve``, the solvers' own checks and the image benchmark (which records :func:`fits`' reason).
"""

from __future__ import annotations

from dataclasses import dataclass

NEEDS_SVD = "needs an SVD"
NEEDS_LINEAR = "needs a linear operator"
NEEDS_DIFFERENTIABLE = "needs a differentiable operator"
NOISELESS_ONLY = "assumes noiseless y"
NEEDS_SVD_NOISY = "needs an SVD for noisy y"


class SolverWarning(UserWarning):
    """A solver runs, but on terms its user should know: noisy y for a noiseless-only solver, an operator gain it cannot measure."""


@dataclass(frozen=True)
class Needs:
    """What a solver declares it needs of an operator (see the module docstring for the defaults)."""

    svd: bool
    linear: bool
    differentiable: bool
    noiseless: bool
    svd_when_noisy: bool = False

    @classmethod
    def of(cls, solver) -> Needs:
        """The declarations of ``solver`` (an instance, a class or a factory), defaults filled in."""
        svd, linear = bool(getattr(solver, "needs_svd", False)), bool(getattr(solver, "needs_linear", False))
        differentiable = bool(getattr(solver, "needs_differentiable", not (svd or linear)))
        noiseless, svd_when_noisy = bool(getattr(solver, "noiseless_only", False)), bool(getattr(solver, "needs_svd_when_noisy", False))
        return cls(svd, linear, differentiable, noiseless, svd_when_noisy)


def fits(solver, operator, *, strict: bool = True) -> str | None:
    """Why ``solver`` does not take ``operator`` (``"needs an SVD"``, ``"needs a linear operator"``,
    ``"needs a differentiable operator"``, ``"assumes noiseless y"``, ``"needs an SVD for noisy y"``), or None when it does.

    ``strict=False`` leaves the noiseless-only rule out: :func:`diff_inverse.solve.solve` still runs
    such a solver on noisy y, which it takes as noiseless, while :func:`solvers_for` and the image
    benchmark hold it to its assumption.

    >>> from diff_inverse.operators import DenseLinear, JPEG
    >>> from diff_inverse.solvers import DDNM, DDRM, DPS
    >>> import torch
    >>> noisy = DenseLinear(torch.eye(2), sigma_y=0.1)
    >>> fits(DDRM(), noisy), fits(DDNM(), noisy), fits(DDNM(), noisy, strict=False)
    (None, 'assumes noiseless y', None)
    >>> fits(DPS(), JPEG((3, 8, 8), gradient="none")), fits(DDRM, JPEG((3, 8, 8)))
    ('needs a differentiable operator', 'needs an SVD')
    """
    needs = Needs.of(solver)
    if needs.svd and not getattr(operator, "has_svd", False):
        return NEEDS_SVD
    if needs.linear and not getattr(operator, "linear", False):
        return NEEDS_LINEAR
    if needs.differentiable and not getattr(operator, "differentiable", True):
        return NEEDS_DIFFERENTIABLE
    if needs.svd_when_noisy and float(getattr(operator, "sigma_y", 0.0)) > 0 and not getattr(operator, "has_svd", False):
        return NEEDS_SVD_NOISY
    if strict and needs.noiseless and float(getattr(operator, "sigma_y", 0.0)) > 0:
        return NOISELESS_ONLY
    return None


def solvers_for(operator, *, strict: bool = True) -> list[str]:
    """The names of the registered solvers (diff-inverse's and any plugin's) that :func:`fits` admits, sorted."""
    import diffcore

    return [c.name for c in diffcore.available("solver") if fits(c.factory, operator, strict=strict) is None]


def refusal(name: str, operator, reason: str) -> str:
    """The error message for solver ``name`` turned away from ``operator`` for ``reason`` (from :func:`fits`),
    naming the solvers that fit."""
    kind = type(operator).__name__
    said = {
        NEEDS_SVD: f"needs an operator with an SVD; {kind} has none",
        NEEDS_LINEAR: f"needs a linear operator; {kind} is not",
        NEEDS_DIFFERENTIABLE: f"needs a differentiable operator; {kind} is not differentiable (autograd cannot go through its A)",
        NOISELESS_ONLY: f"assumes noiseless y; {kind} has sigma_y = {getattr(operator, 'sigma_y', None)}",
        NEEDS_SVD_NOISY: f"needs an operator with an SVD for noisy y; {kind} has none and sigma_y = {getattr(operator, 'sigma_y', None)}",
    }[reason]
    fit = solvers_for(operator)
    return f"solver {name!r} {said}. " + (f"Solvers that fit it: {', '.join(fit)}" if fit else "No registered solver fits it yet")
