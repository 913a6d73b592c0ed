"""A prior with its conditioning fixed, so that code that calls ``predict(x_t, t)`` without a
``cond`` (inverse-problem solvers, distillers) can use a conditional prior."""

from __future__ import annotations

from diffcore.errors import DiffcoreError
from diffcore.priors.guided import _batch
from diffcore.priors.wrapper import PriorWrapper
from diffcore.protocols import Cond, Prediction, check_cond


class Conditioned(PriorWrapper):
    """``prior`` with ``cond`` applied to every call (batch size 1 broadcasts).

    For a class-conditional zoo prior, ``Conditioned(prior, prior.null_cond)`` is the
    unconditional model its classifier-free training learnt (see :func:`unconditional`).
    """

    accepts = frozenset()
    null_cond = Cond()

    def __init__(self, prior, cond: Cond):
        super().__init__(prior)
        if not isinstance(cond, Cond):
            raise DiffcoreError("Conditioned needs cond as a diffcore.Cond")
        check_cond(type(prior).__name__, prior.accepts, cond)
        self.cond = cond
        self.changes_distribution = bool(cond.given())

    def predict(self, x_t, t, cond: Cond | None = None) -> Prediction:
        if cond is not None and cond.given():
            raise DiffcoreError("this prior's conditioning is fixed (Conditioned); pass no cond")
        return self.prior.predict(x_t, t, _batch(self.cond, x_t.shape[0]) if self.cond.given() else None)


def unconditional(prior):
    """``prior`` used without a condition: itself when it is unconditional, else fixed to its ``null_cond``.

    >>> import diffcore
    >>> g = diffcore.priors.GaussianPrior(mean=[0.0])
    >>> unconditional(g) is g
    True
    """
    null = prior.null_cond
    if null is None:
        raise DiffcoreError(f"{type(prior).__name__} has no unconditional model (null_cond is None); give it a condition")
    if not null.given():
        return prior
    return Conditioned(prior, null)
