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

``t_max`` (default 1, the paper's walk over the whole grid) skips the grid times above it. With
few steps the regulariser's gradient at high noise is close to random and Adam's first steps
scatter ``mu`` away from its initial estimate; on zoo:patches at 20 steps, ``t_max=0.5`` takes
super-resolution x2 from 20.2 to 25.1 dB (pseudo-inverse 24.2), denoising from 27.0 to 30.7 and
colorization from 16.8 to 21.1, with fewer network calls (the grid's times below 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import coefs, decoded, noise_like, sigma_y_of
from diffcore.errors import DiffcoreError


@dataclass(frozen=True)
class REDDiff:
    """RED-Diff with Adam (``lr``), regularisation weight ``lam`` and ``init`` of ``mu``."""

    lr: float = 0.1
    lam: float = 0.25
    init: str = "auto"
    t_max: float = 1.0
    name = "red-diff"
    needs_svd = False
    needs_linear = False

    def _init(self, prior, operator, y, generator, start):
        dtype = y.dtype if y.is_floating_point() else torch.float32
        like = torch.empty((y.shape[0], *prior.sample_shape), dtype=dtype, device=y.device)
        if start is not None:
            mu = torch.as_tensor(start).to(like)
            latent = getattr(prior, "latent", None)
            return latent.encode(mu) if latent is not None else mu.expand_as(like).clone()
        mode = self.init
        if mode == "auto":
            mode = "pinv" if getattr(operator, "linear", False) and getattr(prior, "latent", None) is None else "noise"
            if mode == "pinv" and getattr(operator, "has_svd", False) and sigma_y_of(operator) > 0:
                mode = "tikhonov"
        if mode == "pinv":
            return operator.A_pinv(y).reshape(like.shape).to(like) + 0 * like
        if mode == "tikhonov":  # V diag(s / (s^2 + sigma_y^2)) U^T y: the pseudo-inverse without its noise blow-up
            s = operator.singulars().to(like)
            coef = torch.zeros_like(operator.Vt(like))
            coef[:, : s.numel()] = operator.Ut(y).to(like) * s / (s * s + sigma_y_of(operator) ** 2)
            return operator.V(coef).reshape(like.shape)
        if mode == "noise":
            return noise_like(like, generator)
        raise DiffcoreError(f"init must be 'auto', 'pinv', 'tikhonov' or 'noise', got {self.init!r}")

    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y_of(operator)
        if not (isinstance(self.t_max, (int, float)) and 0 < self.t_max <= 1):
            raise DiffcoreError(f"t_max must be in (0, 1], got {self.t_max!r}")
        ts = prior.schedule.timesteps(steps)
        top = min(float(self.t_max), float(t_start) if t_start is not None else 1.0)
        ts = ts[ts <= top + 1e-12]
        if len(ts) < 2:
            raise DiffcoreError(f"t_max={self.t_max} leaves no step of the {steps}-step grid; raise t_max or steps")
        with torch.no_grad():
            mu = self._init(prior, operator, y, generator, start).clone()
        mu.requires_grad_(True)
        opt = torch.optim.Adam([mu], lr=self.lr, betas=(0.9, 0.99))
        for t in ts[:-1]:
            a_t, s_t = coefs(prior.schedule, t, mu)
            with torch.no_grad():
                eps = noise_like(mu, generator)
                pred = prior.predict(a_t * mu + s_t * eps, t)
            with torch.enable_grad():
                resid = y - operator.A(decoded(prior, mu))
                data = (resid * resid).reshape(y.shape[0], -1).mean(1).sum() / 2
                reg = ((pred.eps - eps) * mu).reshape(mu.shape[0], -1).mean(1).sum()
                loss = data + self.lam * (s_t / a_t) * reg
                opt.zero_grad()
                loss.backward()
            opt.step()
        return mu.detach()
