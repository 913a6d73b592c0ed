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

Filters: equal items of ``y`` share one filter and receive distinct particles of its final cloud
(as the authors' benchmark draws its samples), so a batch of K copies of one y is one filter of
``max(particles, K)`` particles, not K filters. ``draws`` caps how many items one filter serves
(``draws=1``: a filter per item). Every filter has ``P = max(particles, largest group)`` particles.
Cost: ``P`` network calls per step for each filter, i.e. ``steps * P * filters`` in all (for K
copies of one y with K >= particles, the same as any one-call-per-step solver on that batch).
:meth:`MCGdiff.run` also returns the effective sample size ``1 / sum(w^2)`` of each resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diff_inverse.solvers._common import coefs, initial_state, noise_like, require_pixel, require_svd, sigma_y_of
from diff_inverse.solvers.options import Options, option
from diffcore.errors import ShapeError


def _log_normal(x, mean, var):
    return -0.5 * ((x - mean) ** 2 / var + torch.log(2 * math.pi * var)).sum(-1)


def equal_groups(key: torch.Tensor, cap: int | None) -> list[torch.Tensor]:
    """Indices of the items of ``key`` (N, ...) grouped by equal rows, in order of first appearance,
    each group split into runs of at most ``cap`` items.

    >>> [g.tolist() for g in equal_groups(torch.tensor([[1.0], [2.0], [1.0], [1.0]]), None)]
    [[0, 2, 3], [1]]
    >>> [g.tolist() for g in equal_groups(torch.tensor([[1.0], [2.0], [1.0], [1.0]]), 2)]
    [[0, 2], [3], [1]]
    """
    _, inverse = torch.unique(key.reshape(key.shape[0], -1), dim=0, return_inverse=True)
    order: dict[int, list[int]] = {}
    for i, u in enumerate(inverse.tolist()):
        order.setdefault(u, []).append(i)
    out = []
    for members in order.values():
        step = cap or len(members)
        out += [torch.tensor(members[j : j + step], dtype=torch.long) for j in range(0, len(members), step)]
    return out


@dataclass(frozen=True)
class SMCResult:
    """The samples (one per item of y), the particles per filter, and the effective sample size of each
    resampling, ``ess[i, f]`` for step i and filter f (between 1 and ``particles``)."""

    x: torch.Tensor
    particles: int
    ess: torch.Tensor
    groups: list[torch.Tensor]

    @property
    def min_ess_fraction(self) -> float:
        """The smallest effective sample size over steps and filters, as a fraction of the particles."""
        return float(self.ess.min()) / self.particles


@dataclass(frozen=True)
class MCGdiff(Options):
    """MCGdiff: one filter of ``max(particles, K)`` particles per K equal items of y (at most ``draws`` per filter)."""

    particles: int = option(64, low=1)
    draws: int | None = option(None, low=1)  # None: every equal item of y shares its filter; 1: a filter per item
    eta: float = option(1.0, low=0.0, high=1.0)
    name = "mcgdiff"
    needs_svd = True
    needs_linear = True

    def _resample(self, logits, generator):
        probs = torch.softmax(logits.to(torch.float64), dim=1)
        device = generator.device if generator is not None else probs.device
        idx = torch.multinomial(probs.to(device), logits.shape[1], replacement=True, generator=generator).to(logits.device)
        return idx, 1.0 / (probs * probs).sum(1)

    def __call__(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None):
        return self.run(prior, operator, y, steps=steps, generator=generator, start=start, t_start=t_start).x

    @torch.no_grad()
    def run(self, prior, operator, y, *, steps, generator=None, start=None, t_start=None) -> SMCResult:
        """Like calling the solver, and also the particle count and the effective sample sizes (:class:`SMCResult`)."""
        require_svd(self.name, operator)
        require_pixel(self.name, prior)
        sigma_y = sigma_y_of(operator)
        N = y.shape[0]
        key = y.reshape(N, -1)
        if start is not None:
            start = torch.as_tensor(start).to(y.device)
            start = start.expand(N, *start.shape[1:]) if start.shape[0] == 1 else start
            if start.shape[0] != N:
                raise ShapeError(f"start has {start.shape[0]} items; expected 1 or {N}, one per item of y")
            key = torch.cat([key, start.reshape(N, -1).to(key)], 1)  # items share a filter when y and start are equal
        groups = equal_groups(key, self.draws)
        F, P = len(groups), max(self.particles, max(len(g) for g in groups))
        heads = torch.stack([g[0] for g in groups]).to(y.device)
        yf = y[heads]
        if start is not None:
            start = start[heads].repeat_interleave(P, 0)
        ts, x = initial_state(prior, yf.repeat_interleave(P, 0), steps, generator, start, t_start)
        s = operator.singulars().to(x)
        k = s.numel()
        yb = (operator.Ut(yf) / s).repeat_interleave(P, 0)  # (F*P, k)
        eta2 = (sigma_y / s) ** 2
        a0, s0 = coefs(prior.schedule, ts[0], x)
        log_g = _log_normal(a0 * yb, operator.Vt(x)[:, :k], s0**2 + a0**2 * eta2)
        log_w = log_g.clone()
        ess = []
        for i in range(len(ts) - 1):
            t, r = ts[i], ts[i + 1]
            pred = prior.predict(x, t)
            a_t, s_t = coefs(prior.schedule, t, x)
            a_r, s_r = coefs(prior.schedule, r, x)
            var = (s_t**2 - (a_t / a_r) ** 2 * s_r**2) * s_r**2 / s_t**2
            c2 = self.eta**2 * var.clamp_min(0)
            mu = operator.Vt(a_r * pred.x0 + torch.sqrt((s_r**2 - c2).clamp_min(0)) * pred.eps)
            del pred, x  # full-size (filters * particles) tensors: free them before the next ones are made
            last_exact = float(s_r) == 0 and sigma_y == 0
            if last_exact:
                v = None
                log_z = _log_normal(yb, mu[:, :k], (s_t**2 / (a_t**2 + s_t**2)).expand(k))
            else:
                v = s_r**2 + a_r**2 * eta2
                log_z = _log_normal(a_r * yb, mu[:, :k], c2 + v)
            anc, step_ess = self._resample((log_w + log_z - log_g).reshape(F, P), generator)
            ess.append(step_ess)
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
        result = torch.empty((N, *x.shape[1:]), dtype=x.dtype, device=x.device)
        cpu = generator.device if generator is not None else "cpu"
        for f, members in enumerate(groups):  # distinct particles of the final (equally weighted) cloud
            pick = torch.randperm(P, generator=generator, device=cpu)[: len(members)].to(x.device)
            result[members.to(x.device)] = cloud[f, pick]
        return SMCResult(result, P, torch.stack(ess).cpu() if ess else torch.empty(0, F, dtype=torch.float64), groups)
