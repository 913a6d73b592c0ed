"""``PriorWrapper``: the base of every prior built around another one.

A wrapper (guidance, fixed conditioning, a collage over a factor graph, an erased concept, an
image prior inflated to video) changes one or two things about the prior it holds and passes the
rest of the :class:`~diffcore.protocols.Prior` contract through. This base forwards every declared
attribute to the inner prior; a subclass overrides what it changes, either as a class attribute
or by assigning it on the instance (``self.accepts = frozenset()``), and implements ``predict``.

>>> import torch
>>> from diffcore.priors import GaussianPrior
>>> class Shifted(PriorWrapper):
...     def predict(self, x_t, t, cond=None):
...         return self.prior.predict(x_t - 1.0, t, cond)
>>> inner = GaussianPrior(mean=[0.0, 0.0])
>>> w = Shifted(inner)
>>> w.schedule is inner.schedule, w.sample_shape, w.accepts
(True, (2,), frozenset())
>>> w.consistent = False
>>> w.consistent, inner.consistent
(False, True)
"""

from __future__ import annotations

from diffcore.protocols import PRIOR_ATTRIBUTES, PriorBase, check_prior_attributes


class _Forwarded:
    """A data descriptor: the wrapper's own value where one was assigned, else the inner prior's."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        own = obj.__dict__.get(self.name, _MISSING)
        return getattr(obj.prior, self.name) if own is _MISSING else own

    def __set__(self, obj, value):
        obj.__dict__[self.name] = value


_MISSING = object()


class PriorWrapper(PriorBase):
    """A prior around ``prior``: every attribute of the contract is the inner prior's unless overridden.

    ``sample_marginal`` is forwarded too only where the wrapper does not change the distribution;
    a subclass that changes it (guidance, a collage) should set ``changes_distribution = True``,
    so that samplers start from ``N(0, init_std^2)`` instead of the inner prior's exact marginal.
    """

    changes_distribution = False

    def __init__(self, prior):
        check_prior_attributes(prior)
        self.prior = prior

    def sample_marginal(self, n: int, t, **options):
        if self.changes_distribution:
            return None
        return self.prior.sample_marginal(n, t, **options)

    def predict(self, x_t, t, cond=None):
        return self.prior.predict(x_t, t, cond)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prior!r})"


for _name in PRIOR_ATTRIBUTES:
    _descriptor = _Forwarded()
    _descriptor.__set_name__(PriorWrapper, _name)
    setattr(PriorWrapper, _name, _descriptor)
del _name, _descriptor
