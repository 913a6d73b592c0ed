"""DPS: diffusion posterior sampling (Chung, Kim, McCann, Klasky & Ye, ICLR 2023).

Approximates ``p(y | x_t) ≈ p(y | x0_hat(x_t))`` (Tweedie's estimate). Each step takes the
prior's DDIM step from ``(x0_hat, eps_hat)`` (or the paper's DDPM step, ``step="ddpm"``) and then
descends the measurement error through the denoiser (Algorithm 1 for Gaussian noise, Algorithm 2
for Poisson):

``x_s = step(x_t) - zeta_i grad_{x_t} ||y - A(x0_hat)||_L^2``,  ``zeta_i = zeta / ||y - A(x0_hat)||_L``,

per sample. ``L = I`` for Gaussian noise. For Poisson noise the residual is taken in counts, the
unit the noise lives in: an operator with ``noise="poisson"`` and ``rate`` measures
``y = 2 c / rate - 1`` from counts ``c ~ Poisson(rate (A(x) + 1) / 2)``, so DPS compares
``c = rate (y + 1) / 2`` with ``lambda(x0_hat) = rate (A(x0_hat) + 1)_+ / 2`` and weighs each entry
by ``L_j = 1 / (2 max(c_j, poisson_floor))``, the paper's Gaussian approximation of the Poisson
likelihood (variance = count).

``zeta=None`` (the default) is ``0.5 sqrt(1000 / steps)``: the paper's constant (0.5 here is
their 1.0 on ``grad ||r||``) is for 1000 steps, and with fewer steps the guidance adds up to too
little. ``discrepancy=True`` (the default) caps each step by Morozov's discrepancy principle: the
step factor is at most ``(||P r||_L^2 - k v)_+ / ||g||^2``, ``g`` the gradient of ``||r||_L^2``,
so that to first order the fittable residual does not fall below its expected size for the true
image (a Polyak step): ``P r = U^T r`` and ``k`` the rank for an operator with an SVD (inpainting
and MRI leave their unmeasured entries exactly 0), else ``P = I`` and ``k`` the number of entries
of y; ``v = sigma_y^2`` for Gaussian noise and ``1 / 2`` for Poisson (the expected weighted square
of one entry). Without the cap, the default ``zeta`` is divided by the largest singular value of
a linear operator when it exceeds 1 (:func:`operator_gain`), so the step does not grow with the
operator's gain. An explicit ``zeta`` is used as given. Works on any operator that autograd can
differentiate, and on latent priors through ``prior.latent.decode`` (``A(decode(x0_hat))``).
Why these defaults, with the measurements: docs/inverse.md.
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass
from typing import Literal

import torch

from diff_inverse.solvers._common import Grid, decoded, initial_state, sigma_y_of
from diff_inverse.solvers.fit import SolverWarning
from diff_inverse.solvers.options import Options, option
from diffcore.errors import DiffcoreError
from diffcore.samplers.ddim import DDIMSteps
from diffcore.samplers.ddpm import DDPMSteps

_GAINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # operator -> its power-iteration gain


def operator_gain(operator, like: torch.Tensor, iterations: int = 30) -> float:
    """The largest singular value of a linear operator (1.0 for a nonlinear one).

    From the SVD where the operator has one, else by power iteration on ``A_adjoint(A(.))`` from a
    fixed random start (one image of ``like``'s shape and dtype), kept per operator object: a CT
    operator costs 60 projections to measure, once rather than at every solve. A linear operator
    whose ``A_adjoint`` raises NotImplementedError has no cheap gain: it is taken as 1.0 and a
    :class:`~diff_inverse.solvers.fit.SolverWarning` says so, once per operator. Any other error
    of the operator propagates, and a gain that is not a finite number is a DiffcoreError.
    """
    if not getattr(operator, "linear", False):
        return 1.0
    if getattr(operator, "has_svd", False):
        return float(operator.singulars().abs().max())
    try:
        return _GAINS[operator]
    except (KeyError, TypeError):  # not measured yet, or an operator that cannot be weakly referenced
        pass
    g = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn((1, *like.shape[1:]), generator=g, dtype=like.dtype).to(like.device)
    value = 0.0
    with torch.no_grad():
        for _ in range(iterations):
            v = v / v.norm().clamp_min(1e-30)
            forward = operator.A(v)
            try:
                w = operator.A_adjoint(forward)
            except NotImplementedError:
                warnings.warn(
                    f"{type(operator).__name__} is linear but has no A_adjoint, so DPS cannot measure its gain and takes it as 1; "
                    "pass zeta= explicitly if its largest singular value is far above 1",
                    SolverWarning,
                    stacklevel=4,
                )
                value = 1.0
                break
            value = float((v * w).sum())
            v = w
    if not math.isfinite(value):
        raise DiffcoreError(f"the gain of {type(operator).__name__} came out as {value} by power iteration: its A or A_adjoint is broken")
    gain = max(value, 0.0) ** 0.5
    try:
        _GAINS[operator] = gain
    except TypeError:
        pass
    return gain


def poisson_counts(operator, what: str = "likelihood 'poisson'") -> float:
    """The rate of an operator with Poisson noise (its ``noise == "poisson"`` and ``rate``), checked."""
    rate = getattr(operator, "rate", None)
    if getattr(operator, "noise", "gaussian") != "poisson" or not isinstance(rate, (int, float)) or not rate > 0:
        raise DiffcoreError(
            f"{what} needs an operator with noise='poisson' and its rate (y = 2 counts / rate - 1); {type(operator).__name__} has "
            f"noise={getattr(operator, 'noise', None)!r}, rate={rate!r}"
        )
    return float(rate)


@dataclass(frozen=True)
class DPS(Options):
    """DPS with the paper's step size ``zeta / ||y - A(x0_hat)||``; likelihood ``gaussian``, ``poisson`` or ``auto`` (the
    operator's noise)."""

    zeta: float | None = option(None, low=0.0)  # None: 0.5 sqrt(1000 / steps)
    eta: float = option(1.0, low=0.0, high=1.0)
    likelihood: Literal["auto", "gaussian", "poisson"] = "auto"
    poisson_floor: float = option(1.0, low=0.0, low_open=True)  # in counts: the variance an entry of 0 counts is given
    step: Literal["ddim", "ddpm"] = "ddim"  # "ddim" (DDIM with eta) or "ddpm" (the paper's DDPM posterior mean plus eta times its noise)
    discrepancy: bool = True  # cap each step where it would fit y below its noise level
    name = "dps"
    needs_svd = False
    needs_linear = False

    def zeta_at(self, steps: int) -> float:
        """The step-size constant used for a run of ``steps`` steps: ``zeta``, or ``0.5 sqrt(1000 / steps)`` when it is None."""
        return float(self.zeta) if self.zeta is not None else 0.5 * (1000.0 / max(int(steps), 1)) ** 0.5

    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = sigma_y_of(operator)
        likelihood = self.likelihood if self.likelihood != "auto" else getattr(operator, "noise", "gaussian")
        poisson = likelihood == "poisson"
        rate = poisson_counts(operator) if poisson else 1.0
        counts = rate * (y + 1) / 2 if poisson else None
        weight = 1.0 / (2.0 * counts.clamp_min(self.poisson_floor)) if poisson else None
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        zeta = self.zeta_at(len(ts) - 1)
        if self.zeta is None and not self.discrepancy:  # the cap bounds high-gain steps by itself
            zeta /= max(1.0, operator_gain(operator, x))
        # the discrepancy principle on the part of y that A can fit: its range (k = rank, from the SVD;
        # masks and MRI leave their unmeasured entries exactly 0), else all entries
        in_range = self.discrepancy and not poisson and getattr(operator, "has_svd", False)
        fitted = operator.singulars().numel() if getattr(operator, "has_svd", False) else y[0].numel()
        noise_sq = float(fitted) * (0.5 if poisson else sigma_y**2) if self.discrepancy else 0.0
        grid = Grid.of(prior.schedule, ts, x)
        ddim, ddpm = (DDIMSteps.on(grid, self.eta), None) if self.step == "ddim" else (None, DDPMSteps.on(grid, self.eta))
        for i in range(len(ts) - 1):
            t = ts[i]
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                pred = prior.predict(xg, t)
                clean = operator.A(decoded(prior, pred.x0))
                if poisson:
                    resid = counts - rate * ((clean + 1) / 2).clamp_min(0)
                    sq = weight * resid * resid
                else:
                    resid = y - clean
                    sq = resid * resid
                sq = sq.reshape(sq.shape[0], -1).sum(1)
                (grad,) = torch.autograd.grad(sq.sum(), xg)
            with torch.no_grad():
                norm = sq.detach().sqrt().clamp_min(1e-12)
                scale = zeta / norm
                if self.discrepancy:  # no further than the first-order step to ||P r||_L^2 = k v
                    gsq = (grad * grad).reshape(grad.shape[0], -1).sum(1).clamp_min(1e-30)
                    fit_sq = operator.Ut(resid.detach()).reshape(x.shape[0], -1).pow(2).sum(1) if in_range else norm * norm
                    scale = torch.minimum(scale, (fit_sq - noise_sq).clamp_min(0.0) / gsq)
                step = scale.reshape(-1, *([1] * (x.ndim - 1))).to(x)
                x0, eps = pred.x0.detach(), pred.eps.detach()
                if ddim is not None:
                    x = ddim(i, x0, eps, generator=generator) - step * grad
                else:
                    x = ddpm(i, x, x0, generator) - step * grad
        return x.detach()
