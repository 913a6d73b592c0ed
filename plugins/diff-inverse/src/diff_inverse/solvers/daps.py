"""DAPS: decoupled annealing posterior sampling (Zhang, Chen, Song, Chen, Zhang & Jiang, 2024, "Improving
diffusion inverse problem solving with decoupled noise annealing", arXiv:2407.01521).

Each step decouples the state at time t from the next one (their Algorithm 1). From ``x_t``:

1. ``x0_hat(x_t)``: the prior's clean estimate, by Tweedie (``ode_steps=1``) or by ``ode_steps``
   deterministic DDIM steps of the probability-flow ODE from t to 0 (their ODE solve);
2. ``x0 ~ p(x0 | x_t, y) ∝ N(x0; x0_hat, r_t^2 I) p(y | x0)``, with ``r_t^2 = nu_t^2 v / (v + nu_t^2)``
   (``nu_t = sigma_t / alpha_t``; the variance of x0 given x_t for data of variance ``v = data_var``,
   the paper's ``r_t`` for v = 1). For a linear operator with an SVD and Gaussian noise this product
   is Gaussian and is sampled exactly: on the measured coordinates precision ``1 / r_t^2 + s_i^2 /
   sigma_y^2`` and mean ``(xb0_i / r_t^2 + s_i (U^T y)_i / sigma_y^2) / precision`` (noiseless y:
   the coordinate is ``yb_i``), ``N(xb0, r_t^2)`` elsewhere. Otherwise (nonlinear or no SVD, latent
   priors) ``langevin_steps`` steps of Langevin dynamics, the paper's sampler, from a draw of
   ``N(x0_hat, r_t^2 I)`` (so the directions the measurement barely constrains start mixed),
   ``z <- z - h (grad_z ||y - A(z)||^2 / (2 s^2) + (z - x0_hat) / r_t^2) + sqrt(2 h) n`` with
   ``s = max(sigma_y, sigma_min)`` and ``h = lr / (1 / r_t^2 + g^2 / s^2)`` (``g`` the operator's
   gain, 1 for a nonlinear one: ``lr`` is a fraction of the largest stable step; the unadjusted
   step inflates a Gaussian's variance by about ``1 / (1 - lr / 2)``, 1.11 at the default);
3. the next state, noised afresh from that x0: ``x_s = alpha_s x0 + sigma_s n``.

With exact conditionals every ``x_s`` has the posterior's law at s, which makes DAPS exact for a
Gaussian prior (``data_var`` its variance) and a linear-Gaussian measurement. Network calls:
``ode_steps`` per step; the Langevin steps call only the operator. It takes nonlinear operators
(phase retrieval) through the Langevin path, which differentiates ``A`` but never the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import coefs, decoded, initial_state, noise_like, sigma_y_of
from diff_inverse.solvers.dps import operator_gain
from diff_inverse.solvers.options import Options, option
from diffcore.samplers import ddim_step


@dataclass(frozen=True)
class DAPS(Options):
    """DAPS: decoupled x0 ~ p(x0 | x_t, y) at each time, then fresh noise to the next."""

    data_var: float = option(1.0, low=0.0, low_open=True)
    ode_steps: int = option(1, low=1)
    langevin_steps: int = option(50, low=1)  # operators without an SVD, latent priors
    lr: float = option(0.2, low=0.0, high=1.0, low_open=True)
    sigma_min: float = option(0.01, low=0.0, low_open=True)  # the Langevin likelihood's noise floor (noiseless y)
    name = "daps"
    needs_svd = False
    needs_linear = False

    def _estimate(self, prior, x, t):
        if self.ode_steps == 1:
            return prior.predict(x, t).x0
        times = torch.linspace(float(t), 0.0, self.ode_steps + 1, dtype=torch.float64)
        for j in range(self.ode_steps):
            pred = prior.predict(x, times[j])
            x = ddim_step(pred.x0, pred.eps, prior.schedule, times[j], times[j + 1])
        return x

    def _exact(self, operator, y, x0_hat, r2, sigma_y, generator):
        s = operator.singulars().to(x0_hat)
        k = s.numel()
        xb = operator.Vt(x0_hat)
        n = noise_like(xb, generator)
        out = xb + r2.sqrt() * n
        if sigma_y == 0:
            out[:, :k] = operator.Ut(y) / s
        else:
            precision = 1 / r2 + s * s / sigma_y**2
            mean = (xb[:, :k] / r2 + s * operator.Ut(y) / sigma_y**2) / precision
            out[:, :k] = mean + n[:, :k] / precision.sqrt()
        return operator.V(out).reshape(x0_hat.shape)

    def _langevin(self, prior, operator, y, x0_hat, r2, sigma_y, generator):
        s2 = max(sigma_y, self.sigma_min) ** 2
        gain = operator_gain(operator, decoded(prior, x0_hat)) if prior.latent is None else 1.0
        h = self.lr / (1 / float(r2) + gain**2 / s2)
        z = x0_hat + r2.sqrt() * noise_like(x0_hat, generator)  # a draw of the prior factor: the weakly measured directions start mixed
        for _ in range(self.langevin_steps):
            with torch.enable_grad():
                zg = z.requires_grad_(True)
                resid = y - operator.A(decoded(prior, zg))
                (grad,) = torch.autograd.grad((resid * resid).sum() / (2 * s2), zg)
            z = z.detach() - h * (grad + (z.detach() - x0_hat) / r2) + (2 * h) ** 0.5 * noise_like(z, generator)
        return z

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        sigma_y = sigma_y_of(operator)
        exact = getattr(operator, "has_svd", False) and prior.latent is None and getattr(operator, "noise", "gaussian") == "gaussian"
        ts, x = initial_state(prior, y, steps, generator, start, t_start)
        for i in range(len(ts) - 1):
            t, r = ts[i], ts[i + 1]
            x0_hat = self._estimate(prior, x, t)
            a_t, s_t = coefs(prior.schedule, t, x)
            nu2 = (s_t / a_t) ** 2
            r2 = nu2 * self.data_var / (self.data_var + nu2)
            if exact:
                x0 = self._exact(operator, y, x0_hat, r2, sigma_y, generator)
            else:
                x0 = self._langevin(prior, operator, y, x0_hat, r2, sigma_y, generator)
            a_r, s_r = coefs(prior.schedule, r, x)
            x = a_r * x0 + s_r * noise_like(x0, generator) if float(s_r) > 0 else x0
        return x
