"""DPS: diffusion posterior sampling (Chung, Kim, McCann, Klasky & Ye, ICLR 2023).

Approximates ``p(y | x_t) ≈ p(y | x0_hat(x_t))`` (Tweedie's estimate). Each step takes the
prior's DDIM step from ``(x0_hat, eps_hat)`` and then descends the measurement error through the
denoiser (Algorithm 1 for Gaussian noise, Algorithm 2 for Poisson):

``x_s = ddim(x_t) - zeta / ||y - A(x0_hat)||_L * grad_{x_t} ||y - A(x0_hat)||_L^2``

with the step size of the paper, ``zeta_i = zeta / ||y - A(x0_hat)||``, per sample. The paper's
``zeta`` (0.5 in these units: their 1.0 on ``grad ||r||``) is for 1000 steps; with fewer steps
the guidance adds up to too little (on zoo:patches at 20 steps, 0.5 leaves the samples near the
prior: 15.6 dB on super-resolution x2 against 24.2 for the pseudo-inverse). The default is
therefore ``zeta = 0.5 sqrt(1000 / steps)`` for the steps actually run (3.5 at 20, 1.6 at 100,
0.5 at 1000; measured on zoo:patches, see docs/inverse-images.md). The step
``2 zeta A^T r / ||r||`` also grows with the operator's gain; without the discrepancy cap below
(which bounds the step by ``||r||^2 / ||g||^2``, scaling with the gain itself: on sparse-view CT
at 20 steps the division then cost 1.7 dB) the default is further divided
by the largest singular value ``s_max`` of a linear operator when it exceeds 1 (sparse-view CT
sums dozens of pixels per detector bin; ``s_max`` from the SVD, or 30 power iterations with
``A_adjoint``): the default step is then invariant to rescaling such an operator, and operators
with gain at most 1 (masks, averages, blurs, Fourier sampling) are unchanged. An explicit
``zeta`` is used as given.

A step that large fits the noise of y: ``x0_hat`` ends closer to ``y`` than the true image is
(on light denoising the sample became noisier than y). With ``discrepancy=True`` (the default,
Gaussian noise) each step is capped by Morozov's discrepancy principle: the step factor is at most
``(||P r||^2 - k sigma_y^2)_+ / ||g||^2``, ``g`` the gradient of ``||r||^2``, ``P r = U^T r`` the
residual in the range of ``A`` and ``k`` its rank (operators with an SVD; inpainting and MRI
leave their unmeasured entries of y exactly 0), else ``P = I`` and ``k`` the number of entries of
``y``: the step that brings the fittable residual down to its expected size for the true image
to first order (a Polyak step; for noiseless y it cannot overshoot ``r = 0``). It costs nothing
(``g`` is already there). On zoo:digits at 20 steps it takes single-sample PSNR on denoising
from 18.8 to 37.6 dB, compressed sensing from 18.8 to 31.6 and noiseless super-resolution x2
from 24.2 to 43.0 (docs/inverse-images.md). ``discrepancy=False`` is the paper's rule (the GMM
benchmark's comparison with the authors' code uses it: their DPS has no such cap, and at its
``zeta = 0.1`` the cap costs 0.1 to 0.4 in SW at d_x = 8, within the intervals). ``L = I`` for
Gaussian noise; for Poisson counts ``L = diag(1 / (2 y_j))`` (their weighted least squares, with
``y_j`` floored at ``poisson_floor``). Works on any operator ``A`` that autograd can differentiate,
and on latent priors through ``prior.latent.decode`` (``A(decode(x0_hat))``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import ddim_step, decoded, initial_state, sigma_y_of
from diffcore.errors import DiffcoreError
from diffcore.samplers.ddpm import ddpm_step

_GAINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # operator -> its power-iteration gain


def operator_gain(operator, like: torch.Tensor, iterations: int = 30) -> float:
    """The largest singular value of a linear operator (1.0 for a nonlinear one or one without an adjoint).

    From the SVD where the operator has one, else by power iteration on ``A_adjoint(A(.))`` from a
    fixed random start (one image of ``like``'s shape and dtype), kept per operator object: a CT
    operator costs 60 projections to measure, once rather than at every solve.
    """
    if not getattr(operator, "linear", False):
        return 1.0
    if getattr(operator, "has_svd", False):
        return float(operator.singulars().abs().max())
    try:
        return _GAINS[operator]
    except (KeyError, TypeError):  # not measured yet, or an operator that cannot be weakly referenced
        pass
    try:
        g = torch.Generator(device="cpu").manual_seed(0)
        v = torch.randn((1, *like.shape[1:]), generator=g, dtype=like.dtype).to(like.device)
        with torch.no_grad():
            value = 0.0
            for _ in range(iterations):
                v = v / v.norm().clamp_min(1e-30)
                w = operator.A_adjoint(operator.A(v))
                value = float((v * w).sum())
                v = w
        gain = max(value, 0.0) ** 0.5
    except (NotImplementedError, AttributeError, DiffcoreError):
        gain = 1.0
    try:
        _GAINS[operator] = gain
    except TypeError:
        pass
    return gain


@dataclass(frozen=True)
class DPS:
    """DPS with the paper's step size ``zeta / ||y - A(x0_hat)||``; likelihood ``gaussian``, ``poisson`` or ``auto``."""

    zeta: float | None = None  # None: 0.5 sqrt(1000 / steps); 0.5 is the official code's 1.0 on grad ||r|| = grad ||r||^2 / (2 ||r||)
    eta: float = 1.0
    likelihood: str = "auto"  # the operator's noise model (its ``noise`` attribute), else gaussian
    poisson_floor: float = 1e-3
    step: str = "ddim"  # the prior's step: "ddim" (DDIM with eta) or "ddpm" (the paper's DDPM posterior mean plus eta times its noise)
    discrepancy: bool = True  # Gaussian noise: cap each step where it would fit y below its noise level (see the module docstring)
    name = "dps"
    needs_svd = False
    needs_linear = False

    def zeta_at(self, steps: int) -> float:
        """The step-size constant used for a run of ``steps`` steps: ``zeta``, or ``0.5 sqrt(1000 / steps)`` when it is None."""
        return float(self.zeta) if self.zeta is not None else 0.5 * (1000.0 / max(int(steps), 1)) ** 0.5

    def __post_init__(self):
        if self.zeta is not None and not (isinstance(self.zeta, (int, float)) and self.zeta >= 0):
            raise DiffcoreError(f"zeta must be a number >= 0 (or None for the step-count default), got {self.zeta!r}")
        if self.step not in ("ddim", "ddpm"):
            raise DiffcoreError(f"step must be 'ddim' or 'ddpm', got {self.step!r}")
        if self.likelihood not in ("auto", "gaussian", "poisson"):
            raise DiffcoreError(f"likelihood must be 'auto', 'gaussian' or 'poisson', got {self.likelihood!r}")

    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = sigma_y_of(operator)
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        weight = None
        likelihood = self.likelihood if self.likelihood != "auto" else getattr(operator, "noise", "gaussian")
        if likelihood == "poisson":
            weight = 1.0 / (2.0 * y.clamp_min(self.poisson_floor))
        zeta = self.zeta_at(len(ts) - 1)
        if self.zeta is None and not (self.discrepancy and weight is None):  # the cap below bounds high-gain steps itself
            zeta /= max(1.0, operator_gain(operator, x))
        # Morozov's discrepancy principle on the part of y that A can fit: its range (k = rank noisy
        # coordinates, from the SVD; masks and MRI leave their unmeasured entries exactly 0), else all m entries
        clamp = self.discrepancy and weight is None
        in_range = clamp and getattr(operator, "has_svd", False)
        noisy = operator.singulars().numel() if in_range else y[0].numel()
        noise_sq = sigma_y**2 * float(noisy) if clamp else 0.0
        for i in range(len(ts) - 1):
            t, r = ts[i], ts[i + 1]
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                pred = prior.predict(xg, t)
                resid = y - operator.A(decoded(prior, pred.x0))
                sq = resid * resid if weight is None else weight * resid * resid
                sq = sq.reshape(sq.shape[0], -1).sum(1)
                (grad,) = torch.autograd.grad(sq.sum(), xg)
            with torch.no_grad():
                norm = sq.detach().sqrt().clamp_min(1e-12)
                scale = zeta / norm
                if clamp:  # no further than the first-order step to ||P r||^2 = k sigma_y^2
                    gsq = (grad * grad).reshape(grad.shape[0], -1).sum(1).clamp_min(1e-30)
                    fit_sq = operator.Ut(resid.detach()).reshape(x.shape[0], -1).pow(2).sum(1) if in_range else norm * norm
                    scale = torch.minimum(scale, (fit_sq - noise_sq).clamp_min(0.0) / gsq)
                step = scale.reshape(-1, *([1] * (x.ndim - 1))).to(x)
                if self.step == "ddim":
                    x = ddim_step(pred.x0.detach(), pred.eps.detach(), prior.schedule, t, r, self.eta, generator) - step * grad
                else:
                    x = ddpm_step(x, pred.x0.detach(), prior.schedule, t, r, generator, self.eta) - step * grad
        return x.detach()
