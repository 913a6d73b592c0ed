"""MCGdiff: Monte Carlo guided diffusion (Cardoso, Janati, Le Corff & Moulines, ICLR 2024).

A sequential Monte Carlo sampler of the posterior of a linear inverse problem, exact in the
limit of many particles (for an exact backward kernel). In the operator's SVD basis
``xb = V^T x``, ``yb_i = (U^T y)_i / s_i`` and ``eta_i = sigma_y / s_i``, the targets are
``pi_t(x_t) ∝ p_t(x_t) g_t(x_t)`` with the forward-noised likelihood of the measured coordinates

``g_t(x_t) = prod_i N(alpha_t yb_i; xb_t,i, v_t,i)``, ``v_t,i = sigma_t^2 + alpha_t^2 eta_i^2``,

so that ``g_0`` is the true likelihood ``N(yb; xb0, eta^2)`` (for sigma_y = 0, the constraint
``xb0 = yb``). The backward kernel is the prior's DDIM step ``N(mu(x_t), c^2 I)``; its product
with ``g_s`` is Gaussian, which gives the optimal proposal and its normaliser
``Z(x_t) = prod_i N(alpha_s yb_i; mu_i(x_t), c^2 + v_s,i)``. Each step resamples ancestors with
weights ``Z(x_t) / g_t(x_t)`` (an auxiliary particle filter) and draws from the proposal: the
measured coordinates from ``N((mu v + alpha_s yb c^2) / (c^2 + v), c^2 v / (c^2 + v))``, the others
from the kernel. For noiseless y the last step, whose DDIM kernel is a point mass, sets the
measured coordinates to ``yb`` and weighs with the Tweedie variance ``sigma_t^2 / (alpha_t^2 + sigma_t^2)``.

``particles`` particles make one filter. Each item of ``y`` gets its own filter unless
``draws > 1``: then each run of ``draws`` consecutive (equal) items of y shares a filter and
receives distinct particles of its final cloud, as the authors' benchmark does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import coefs, initial_state, noise_like, require_pixel, require_svd, sigma_y_of
from diffcore.errors import DiffcoreError


def _log_normal(x, mean, var):
    return -0.5 * ((x - mean) ** 2 / var + torch.log(2 * math.pi * var)).sum(-1)


@dataclass(frozen=True)
class MCGdiff:
    """MCGdiff with ``particles`` per filter and ``draws`` outputs taken from each filter."""

    particles: int = 64
    draws: int = 1
    eta: float = 1.0
    name = "mcgdiff"
    needs_svd = True
    needs_linear = True

    def _resample(self, logits, generator):
        probs = torch.softmax(logits.to(torch.float64), dim=1)
        device = generator.device if generator is not None else probs.device
        idx = torch.multinomial(probs.to(device), logits.shape[1], replacement=True, generator=generator).to(logits.device)
        return idx

    @torch.no_grad()
    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        require_svd(self.name, operator)
        require_pixel(self.name, prior)
        if not isinstance(self.particles, int) or self.particles < 1 or not isinstance(self.draws, int) or not 1 <= self.draws <= self.particles:
            raise DiffcoreError(f"mcgdiff needs particles >= 1 and 1 <= draws <= particles, got particles={self.particles}, draws={self.draws}")
        sigma_y = sigma_y_of(operator)
        N, P, D = y.shape[0], self.particles, self.draws
        F = -(-N // D)
        group = torch.arange(N, device=y.device) // D
        yf = y[torch.arange(F, device=y.device) * D]
        if D > 1 and not torch.equal(y, yf[group]):
            raise DiffcoreError(f"mcgdiff with draws={D} shares one filter between {D} consecutive items of y, which must be equal")
        if start is not None:
            start = torch.as_tensor(start)
            start = start.expand(N, *start.shape[1:]) if start.shape[0] == 1 else start
            start = start[torch.arange(F, device=start.device) * D].repeat_interleave(P, 0)
        ts, x = initial_state(prior, yf.repeat_interleave(P, 0), steps, generator, start, t_start)
        s = operator.singulars().to(x)
        k = s.numel()
        yb = (operator.Ut(yf) / s).repeat_interleave(P, 0)  # (F*P, k)
        eta2 = (sigma_y / s) ** 2
        a0, s0 = coefs(prior.schedule, ts[0], x)
        log_g = _log_normal(a0 * yb, operator.Vt(x)[:, :k], s0**2 + a0**2 * eta2)
        log_w = log_g.clone()
        for i in range(len(ts) - 1):
            t, r = ts[i], ts[i + 1]
            pred = prior.predict(x, t)
            a_t, s_t = coefs(prior.schedule, t, x)
            a_r, s_r = coefs(prior.schedule, r, x)
            var = (s_t**2 - (a_t / a_r) ** 2 * s_r**2) * s_r**2 / s_t**2
            c2 = self.eta**2 * var.clamp_min(0)
            mu = operator.Vt(a_r * pred.x0 + torch.sqrt((s_r**2 - c2).clamp_min(0)) * pred.eps)
            del pred, x  # full-size (N * particles) tensors: free them before the next ones are made
            last_exact = float(s_r) == 0 and sigma_y == 0
            if last_exact:
                v = None
                log_z = _log_normal(yb, mu[:, :k], (s_t**2 / (a_t**2 + s_t**2)).expand(k))
            else:
                v = s_r**2 + a_r**2 * eta2
                log_z = _log_normal(a_r * yb, mu[:, :k], c2 + v)
            anc = self._resample((log_w + log_z - log_g).reshape(F, P), generator)
            rows = (anc + torch.arange(F, device=mu.device)[:, None] * P).reshape(-1)
            mu, ybr = mu[rows], yb[rows]
            n = noise_like(mu, generator)
            out = mu + c2.sqrt() * n
            if last_exact:
                out[:, :k] = ybr
            else:
                den = c2 + v
                out[:, :k] = (mu[:, :k] * v + a_r * ybr * c2) / den + torch.sqrt(c2 * v / den) * n[:, :k]
            del mu, n
            x = operator.V(out)
            log_w = torch.zeros_like(log_w)
            if float(s_r) > 0:
                log_g = _log_normal(a_r * yb, out[:, :k], v)
            del out
        cloud = x.reshape(F, P, *x.shape[1:])
        pick = torch.stack([torch.randperm(P, generator=generator, device=generator.device if generator is not None else "cpu")[:D] for _ in range(F)]).to(x.device)
        chosen = torch.gather(cloud, 1, pick.reshape(F, D, *([1] * (x.ndim - 1))).expand(F, D, *x.shape[1:]))
        return chosen.reshape(F * D, *x.shape[1:])[:N]
