"""Classifier-free guidance as a prior (Ho & Salimans 2022).

Convention (diffusers'): ``eps = eps_uncond + scale * (eps_cond - eps_uncond)``, so ``scale = 1``
is the conditional model and ``scale = 0`` the unconditional one. ``x0`` is the clean estimate
that this ``eps`` implies, ``(x_t - sigma eps) / alpha``, as diffusers' schedulers compute it;
for a prior with ``x_t = alpha x0 + sigma eps`` this is the same combination of the two ``x0``.
A prior that clips ``x0`` (``consistent = False``) gets the combination of its clipped ``x0``
instead. The two predictions run as one batch of 2N.
"""

from __future__ import annotations

from dataclasses import fields

import torch

from diffcore.errors import DiffcoreError
from diffcore.priors.wrapper import PriorWrapper
from diffcore.protocols import Cond, Prediction


def _repeat_field(value, n: int):
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == 1 and n > 1:
        return value.expand(n, *value.shape[1:])
    if isinstance(value, str):  # one prompt for the whole batch; list(str) would split it into characters
        return [value] * n
    if isinstance(value, (list, tuple)) and len(value) == 1 and n > 1:
        return list(value) * n
    return value


def _batch(cond: Cond, n: int) -> Cond:
    return Cond(**{f.name: _repeat_field(getattr(cond, f.name), n) for f in fields(Cond)})


def _cat(a: Cond, b: Cond) -> Cond:
    out = {}
    for f in fields(Cond):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if (va is None) != (vb is None):
            raise DiffcoreError(f"cond and uncond must set the same fields; {f.name} is set in only one")
        if va is None:
            out[f.name] = None
        elif isinstance(va, torch.Tensor):
            out[f.name] = torch.cat([va, vb])
        else:
            out[f.name] = list(va) + list(vb)
    return Cond(**out)


class Guided(PriorWrapper):
    """Wrap ``prior`` with classifier-free guidance of strength ``scale``.

    ``cond`` and ``uncond`` are :class:`~diffcore.Cond` objects with batch size 1 (broadcast)
    or N; ``uncond`` defaults to the prior's ``null_cond`` (its null label or empty prompt). A
    call to ``predict`` with its own ``cond`` replaces the stored one for that call.
    """

    changes_distribution = True

    def __init__(self, prior, scale: float, cond: Cond, uncond: Cond | None = None):
        super().__init__(prior)
        if uncond is None:
            uncond = prior.null_cond
            if uncond is None:
                raise DiffcoreError(f"{type(prior).__name__} has no unconditional model (null_cond is None); pass uncond= explicitly")
        if not isinstance(cond, Cond) or not isinstance(uncond, Cond):
            raise DiffcoreError("Guided needs cond and uncond as diffcore.Cond objects")
        self.scale, self.cond, self.uncond = float(scale), cond, uncond

    def predict(self, x_t, t, cond: Cond | None = None) -> Prediction:
        n = x_t.shape[0]
        c = _batch(cond if cond is not None else self.cond, n)
        u = _batch(self.uncond, n)
        tt = t
        if isinstance(t, torch.Tensor) and t.ndim == 1:
            if t.shape != (n,):
                raise DiffcoreError(f"t has shape {tuple(t.shape)}; expected a scalar or ({n},) to match x_t")
            tt = torch.cat([t, t])  # keeps t's dtype: float32 (or float16) would shift discrete timesteps
        both = self.prior.predict(torch.cat([x_t, x_t]), tt, _cat(c, u))
        ec, eu = both.eps.chunk(2)
        s = self.scale
        eps = eu + s * (ec - eu)
        if not self.consistent:
            xc, xu = both.x0.chunk(2)
            return Prediction(x0=xu + s * (xc - xu), eps=eps)
        t64 = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
        alpha, sigma = self.schedule.alpha(t64).to(x_t.dtype), self.schedule.sigma(t64).to(x_t.dtype)
        if t64.ndim == 1:  # a 0-d CPU tensor multiplies tensors on any device; (N,) ones must move
            alpha, sigma = alpha.to(x_t.device), sigma.to(x_t.device)
        return Prediction.from_eps(x_t, eps, alpha, sigma)
