"""RED-Diff: a variational perspective on inverse problems with diffusion (Mardani, Song, Kautz & Vahdat, 2023).

Fits ``q(x0) = N(mu, ~0)`` by stochastic optimisation of (eq. 8-10 of the paper)

``||y - A(mu)||^2 / 2 + lambda_t (sg[eps_hat(x_t, t) - eps])^T mu``,  ``x_t = alpha_t mu + sigma_t eps``,

a data term plus the diffusion prior as a regulariser by denoising, whose gradient needs no
Jacobian of the network (score-distillation style). The time walks the prior's grid from noisy to
clean, one Adam step per time, with the SNR weighting ``lambda_t = lam * sigma_t / alpha_t`` of the
paper. Means are over the elements of each sample and sums over the batch, so items stay
independent. ``mu`` starts from ``A^+ y`` (``init="pinv"``, linear operators), from the
Tikhonov-regularised inverse ``V diag(s / (s^2 + sigma_y^2)) U^T y`` (``init="tikhonov"``, the
default for noisy y and an operator with an SVD: the pseudo-inverse of an ill-conditioned
operator such as a blur amplifies the noise far beyond what 20-100 Adam steps undo), from prior
noise (``init="noise"``) or from ``start`` (CCDF-style). Latent priors optimise the latent and measure
``A(decode(mu))``.

``t_max`` skips the grid times above it and ``decay="linear"`` lowers Adam's learning rate
linearly to ``lr / n`` over the ``n`` steps. The paper walks the whole grid (``t_max=1``) at a
constant rate (``decay="none"``) for 1000 steps. From an initial estimate (``pinv``, ``tikhonov``,
``start``) the defaults are ``t_max=0.5`` with the linear decay: with 20 to 100 steps the
regulariser's gradient at high noise is close to random and scatters ``mu`` away from its estimate.
From noise (``init="noise"``, latent priors) there is no estimate to keep, and the defaults are the
paper's walk.

Scale: ``lr`` is an Adam step, in the data's own units, and the default 0.1 is set for image
priors on [-1, 1] (a tenth of the range). It is not rescaled for data on another scale: multiply
it by the data's spread (the Gaussian-mixture benchmark, whose data span +-16, uses 2.0; at 0.1
the samples stay near the initial estimate). The measurements behind the defaults: docs/inverse.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from diff_inverse.solvers._common import Grid, decoded, noise_like, on_device, sigma_y_of
from diff_inverse.solvers.options import Options, option
from diffcore.errors import DiffcoreError


@dataclass(frozen=True)
class REDDiff(Options):
    """RED-Diff with Adam (``lr``), regularisation weight ``lam`` and ``init`` of ``mu``."""

    lr: float = option(0.1, low=0.0, low_open=True)  # in data units: set for priors on [-1, 1] (see the module docstring)
    lam: float = option(0.25, low=0.0)
    init: Literal["auto", "pinv", "tikhonov", "noise"] = "auto"
    t_max: float | None = option(
        None, low=0.0, high=1.0, low_open=True
    )  # None: 0.5 from an initial estimate (pinv, tikhonov, start), 1 from noise
    decay: Literal["linear", "none"] | None = None  # None: "linear" from an initial estimate, "none" from noise
    name = "red-diff"
    needs_svd = False
    needs_linear = False

    def _init(self, prior, operator, y, generator, start):
        dtype = y.dtype if y.is_floating_point() else torch.float32
        like = torch.empty((y.shape[0], *prior.sample_shape), dtype=dtype, device=y.device)
        if start is not None:
            mu = torch.as_tensor(start).to(like)
            latent = prior.latent
            return (latent.encode(mu) if latent is not None else mu.expand_as(like).clone()), True
        mode = self.init
        if mode == "auto":
            mode = "pinv" if getattr(operator, "linear", False) and prior.latent is None else "noise"
            if mode == "pinv" and getattr(operator, "has_svd", False) and sigma_y_of(operator) > 0:
                mode = "tikhonov"
        if mode == "pinv":
            return operator.A_pinv(y).reshape(like.shape).to(like) + 0 * like, True
        if mode == "tikhonov":  # V diag(s / (s^2 + sigma_y^2)) U^T y: the pseudo-inverse without its noise blow-up
            s = operator.singulars().to(like)
            coef = torch.zeros_like(operator.Vt(like))
            coef[:, : s.numel()] = operator.Ut(y).to(like) * s / (s * s + sigma_y_of(operator) ** 2)
            return operator.V(coef).reshape(like.shape), True
        if mode == "noise":
            return noise_like(like, generator), False
        raise DiffcoreError(f"init must be 'auto', 'pinv', 'tikhonov' or 'noise', got {self.init!r}")

    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y_of(operator)
        with torch.no_grad():
            mu, from_estimate = self._init(prior, operator, y, generator, start)
            mu = mu.clone()
        t_max = self.t_max if self.t_max is not None else (0.5 if from_estimate else 1.0)
        decay = self.decay if self.decay is not None else ("linear" if from_estimate else "none")
        ts = prior.schedule.timesteps(steps)
        top = min(float(t_max), float(t_start) if t_start is not None else 1.0)
        ts = ts[ts <= top + 1e-12]
        if len(ts) < 2:
            raise DiffcoreError(f"t_max={t_max} leaves no step of the {steps}-step grid; raise t_max or steps")
        mu.requires_grad_(True)
        opt = torch.optim.Adam([mu], lr=self.lr, betas=(0.9, 0.99))
        n_steps = len(ts) - 1
        grid = Grid.of(prior.schedule, ts, mu)
        weight = on_device(mu, [self.lam * (s / a) for a, s in (grid.host(i) for i in range(n_steps))])  # lambda_t, computed once
        for i in range(n_steps):
            t = ts[i]
            if decay == "linear":  # lr, lr (n-1)/n, ..., lr/n
                for group in opt.param_groups:
                    group["lr"] = self.lr * (n_steps - i) / n_steps
            a_t, s_t = grid.alpha[i], grid.sigma[i]
            with torch.no_grad():
                eps = noise_like(mu, generator)
                pred = prior.predict(a_t * mu + s_t * eps, t)
            with torch.enable_grad():
                resid = y - operator.A(decoded(prior, mu))
                data = (resid * resid).reshape(y.shape[0], -1).mean(1).sum() / 2
                reg = ((pred.eps - eps) * mu).reshape(mu.shape[0], -1).mean(1).sum()
                loss = data + weight[i] * reg
                opt.zero_grad()
                loss.backward()
            opt.step()
        return mu.detach()
