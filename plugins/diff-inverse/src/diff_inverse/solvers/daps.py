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

from diff_inverse.solvers._common import Grid, decoded, initial_state, noise_like, on_device, sigma_y_of
from diff_inverse.solvers.dps import operator_gain
from diff_inverse.solvers.options import Options, option
from diffcore.samplers.ddim import DDIMSteps


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

    def _ode_grids(self, prior, ts, like):
        """For ``ode_steps > 1``: each step's probability-flow grid from its time to 0 with its DDIM factors, computed once."""
        if self.ode_steps == 1:
            return None
        grids = []
        for t in ts[:-1]:
            times = torch.linspace(float(t), 0.0, self.ode_steps + 1, dtype=torch.float64)
            grids.append((times, DDIMSteps.on(Grid.of(prior.schedule, times, like))))
        return grids

    def _estimate(self, prior, x, t, ode):
        if ode is None:
            return prior.predict(x, t).x0
        times, step = ode
        for j in range(self.ode_steps):
            pred = prior.predict(x, times[j])
            x = step(j, pred.x0, pred.eps)
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

    def _langevin(self, prior, operator, y, x0_hat, r2, r2_host: float, gain: float, sigma_y, generator):
        s2 = max(sigma_y, self.sigma_min) ** 2
        h = self.lr / (1 / r2_host + gain**2 / s2)
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
        grid = Grid.of(prior.schedule, ts, x)
        r2_host = [self._r2(*grid.host(i)) for i in range(grid.steps)]
        r2s, r2_floats = on_device(x, r2_host), [float(r) for r in r2_host]
        ode = self._ode_grids(prior, ts, x)
        # the operator's gain once, before the loop (the Langevin step size; the same at every step)
        gain = 1.0 if exact or prior.latent is not None else operator_gain(operator, decoded(prior, torch.zeros_like(x[:1])))
        for i in range(grid.steps):
            x0_hat = self._estimate(prior, x, ts[i], None if ode is None else ode[i])
            if exact:
                x0 = self._exact(operator, y, x0_hat, r2s[i], sigma_y, generator)
            else:
                x0 = self._langevin(prior, operator, y, x0_hat, r2s[i], r2_floats[i], gain, sigma_y, generator)
            x = grid.alpha[i + 1] * x0 + grid.sigma[i + 1] * noise_like(x0, generator) if not grid.final(i + 1) else x0
        return x

    def _r2(self, a_t, s_t):
        """``r_t^2 = nu_t^2 v / (v + nu_t^2)`` on the host (0-d)."""
        nu2 = (s_t / a_t) ** 2
        return nu2 * self.data_var / (self.data_var + nu2)
