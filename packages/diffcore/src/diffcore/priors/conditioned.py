"""A prior with its conditioning fixed, so that code that calls ``predict(x_t, t)`` without a
``cond`` (inverse-problem solvers, distillers) can use a conditional prior."""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError
from diffcore.priors.guided import _batch
from diffcore.protocols import Cond, Prediction, check_cond


class Conditioned:
    """``prior`` with ``cond`` applied to every call (batch size 1 broadcasts).

    For a class-conditional zoo prior, ``Conditioned(prior, Cond(labels=torch.tensor([prior.null_label])))``
    is the unconditional model its classifier-free training learnt.
    """

    accepts = frozenset()

    def __init__(self, prior, cond: Cond):
        if not isinstance(cond, Cond):
            raise DiffcoreError("Conditioned needs cond as a diffcore.Cond")
        check_cond(type(prior).__name__, getattr(prior, "accepts", frozenset()), cond)
        self.prior, self.cond = prior, cond
        self.schedule = prior.schedule
        self.sample_shape = prior.sample_shape
        self.latent = getattr(prior, "latent", None)
        self.consistent = bool(getattr(prior, "consistent", True))

    @property
    def device(self):
        return getattr(self.prior, "device", torch.device("cpu"))

    def predict(self, x_t, t, cond: Cond | None = None) -> Prediction:
        if cond is not None and cond.given():
            raise DiffcoreError("this prior's conditioning is fixed (Conditioned); pass no cond")
        return self.prior.predict(x_t, t, _batch(self.cond, x_t.shape[0]))
