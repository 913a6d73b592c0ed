"""Gaussian-mixture priors: exact denoisers at every t, the oracles of diffcore's tests.

For ``p(x0) = sum_k w_k N(m_k, C_k)`` and ``x_t = alpha x0 + sigma eps``, the marginal at time
t is ``sum_k w_k N(alpha m_k, alpha^2 C_k + sigma^2 I)``. Writing ``C_k = Q_k diag(l_k) Q_k^T``
and ``z_k = Q_k^T (x_t - alpha m_k)``, ``v_k = alpha^2 l_k + sigma^2``:

- responsibilities ``r_k(x_t) ∝ w_k N(x_t; alpha m_k, alpha^2 C_k + sigma^2 I)``;
- ``E[x0 | x_t] = sum_k r_k (m_k + Q_k (alpha l_k / v_k * z_k))``;
- ``E[eps | x_t] = sum_k r_k Q_k (sigma / v_k * z_k)`` (finite at sigma = 0).

A linear-Gaussian measurement ``y = A x0 + sigma_y n`` keeps the posterior a mixture
(:meth:`GaussianMixturePrior.posterior`), the exact target for inverse-problem solvers.

>>> import torch
>>> gmm = GaussianMixturePrior(means=[[-2.0], [2.0]], weights=[0.3, 0.7])
>>> pred = gmm.predict(torch.tensor([[2.0]]), 0.5)
>>> tuple(pred.x0.shape)
(1, 1)
>>> post = gmm.posterior(torch.tensor([[1.0]]), torch.tensor([1.9]), sigma_y=0.1)
>>> round(float(post.weights[1]), 3)
1.0
"""

from __future__ import annotations

import math

import torch

from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import Cond, Prediction, PriorBase, check_cond, time_tensor

_CHUNK = 1 << 22  # elements of the (N, K, d) work arrays processed at once


def _default_schedule():
    from diffcore.schedules import DiscreteSchedule

    return DiscreteSchedule.linear(1000)


class GaussianMixturePrior(PriorBase):
    """A mixture ``sum_k w_k N(m_k, C_k)`` in ``d`` dimensions with exact predictions.

    Args:
        means: (K, d) component means.
        weights: (K,) non-negative weights (normalised here); default uniform.
        covs: ``None`` for identity covariances, (K, d) for diagonal ones, or (K, d, d) full
            symmetric positive semi-definite ones.
        schedule: the forward process; default DDPM linear with 1000 steps.
        shape: the shape of one sample, e.g. ``(1, 4, 4)`` to use the mixture as an image
            prior; must have ``d`` elements; default ``(d,)``.
    """

    def __init__(self, means, weights=None, covs=None, *, schedule=None, shape=None):
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 2:
            raise ShapeError(f"means has shape {tuple(means.shape)}; expected (K, d)")
        K, d = means.shape
        weights = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (K,):
            raise ShapeError(f"weights has shape {tuple(weights.shape)}; expected ({K},) to match means")
        if bool((weights < 0).any()) or float(weights.sum()) <= 0 or not bool(torch.isfinite(weights).all()):
            raise DiffcoreError("weights must be finite, non-negative and not all zero")
        self.means = means
        self.weights = weights / weights.sum()
        self.schedule = schedule if schedule is not None else _default_schedule()
        self.sample_shape = tuple(shape) if shape is not None else (d,)
        if math.prod(self.sample_shape) != d:
            raise ShapeError(f"shape {self.sample_shape} has {math.prod(self.sample_shape)} elements; expected {d}")
        self._set_covs(covs, K, d)

    # -- covariance storage: eigenbasis Q (None = axis aligned), eigenvalues lam --------------
    def _set_covs(self, covs, K, d):
        if covs is None:
            self.kind, self.Q, self.lam = "identity", None, torch.ones(1, d, dtype=torch.float64)
            return
        covs = torch.as_tensor(covs, dtype=torch.float64)
        if covs.shape == (K, d):
            if bool((covs < 0).any()):
                raise DiffcoreError("diagonal covariances must be non-negative")
            shared = bool((covs == covs[:1]).all())
            self.kind, self.Q, self.lam = "diagonal", None, covs[:1] if shared else covs
        elif covs.shape == (K, d, d):
            shared = bool((covs == covs[:1]).all())
            unique = covs[:1] if shared else covs  # (1, d, d) when shared: checks and eigh once
            if not torch.allclose(unique, unique.transpose(1, 2), atol=1e-8 * max(1.0, float(unique.abs().max()))):
                raise DiffcoreError("full covariances must be symmetric")
            lam, Q = torch.linalg.eigh(unique)
            if float(lam.min()) < -1e-8 * max(1.0, float(lam.abs().max())):
                raise DiffcoreError(f"covariances must be positive semi-definite (smallest eigenvalue {float(lam.min()):.3g})")
            self.kind, self.Q, self.lam = "full", Q, lam.clamp_min(0)
        else:
            raise ShapeError(f"covs has shape {tuple(covs.shape)}; expected ({K}, {d}) diagonal or ({K}, {d}, {d}) full")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def _cov_stack(self) -> torch.Tensor:
        """Covariances as (K, d, d), or (1, d, d) when all components share one."""
        if self.Q is None:
            return torch.diag_embed(self.lam)
        return (self.Q * self.lam[:, None, :]) @ self.Q.transpose(1, 2)

    def covariances(self) -> torch.Tensor:
        """The (K, d, d) covariance matrices."""
        return self._cov_stack().expand(self.n_components, self.dim, self.dim)

    # -- core computation --------------------------------------------------------------------
    def _rotate(self, x):
        """x (N, d) -> coordinates in each component's eigenbasis, (N, K|1, d)."""
        if self.Q is None:
            return x[:, None, :]
        if self.Q.shape[0] == 1:
            return (x @ self.Q[0])[:, None, :]
        return torch.einsum("nd,kde->nke", x, self.Q)

    def _unrotate(self, u):
        """(N, K, d) eigen-coordinates weighted per component -> summed back, (N, d)."""
        if self.Q is None:
            return u.sum(1)
        if self.Q.shape[0] == 1:
            return u.sum(1) @ self.Q[0].T
        return torch.einsum("nke,kde->nd", u, self.Q)

    def _mean_coords(self):
        if self.Q is None:
            return self.means
        if self.Q.shape[0] == 1:
            return self.means @ self.Q[0]
        return torch.einsum("kd,kde->ke", self.means, self.Q)

    @property
    def _shared(self) -> bool:
        """All components share one covariance: the fast path of matrix products applies."""
        return self.lam.shape[0] == 1

    def _shared_terms(self, xr, alpha, sigma):
        """Fast path for a shared covariance: log joints (N, K) from three matrix products.

        ``sum_e (xr_e - a mu_ke)^2 / v_e = sum xr^2/v - 2a (xr/v) mu_k + a^2 (1/v) mu_k^2``.
        """
        a, s = alpha[:, None], sigma[:, None]
        v = a * a * self.lam + s * s  # (N, d)
        mu = self._mean_coords()
        quad = (xr * xr / v).sum(1, keepdim=True) - 2 * a * ((xr / v) @ mu.T) + a * a * ((1 / v) @ (mu * mu).T)
        logn = -0.5 * (quad + torch.log(v).sum(1, keepdim=True) + self.dim * math.log(2 * math.pi))
        return torch.log(self.weights)[None] + logn, v

    def _terms(self, x, alpha, sigma):
        """Per-component log joint ``log w_k + log N_k(x)``, eigen residual z and variance v."""
        a, s = alpha[:, None, None], sigma[:, None, None]
        z = self._rotate(x) - a * self._mean_coords()[None]
        v = a * a * self.lam[None] + s * s
        logn = -0.5 * ((z * z / v).sum(-1) + torch.log(v).sum(-1) + self.dim * math.log(2 * math.pi))
        return torch.log(self.weights)[None] + logn, z, v

    def _flat(self, x):
        n = x.shape[0]
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ShapeError(f"x has shape {tuple(x.shape)}; expected (N, {', '.join(map(str, self.sample_shape))})")
        return x.reshape(n, -1).to(torch.float64)

    def _chunks(self, n):
        step = max(1, _CHUNK // (self.n_components * self.dim))
        return [(i, min(n, i + step)) for i in range(0, n, step)]

    def predict(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> Prediction:
        check_cond("gmm", self.accepts, cond)
        x = self._flat(x_t)
        tt = time_tensor(t, x_t).to(torch.float64)
        alpha, sigma = self.schedule.alpha(tt), self.schedule.sigma(tt)
        x0 = torch.empty_like(x)
        eps = torch.empty_like(x)
        mc = self.means
        for i, j in self._chunks(x.shape[0]):
            a, s = alpha[i:j, None], sigma[i:j, None]
            if self._shared:
                xr = self._rotate(x[i:j])[:, 0]
                logj, v = self._shared_terms(xr, a[:, 0], s[:, 0])
                mbar = torch.softmax(logj, dim=1) @ self._mean_coords()  # E[m | x_t], eigen coordinates
                resid = xr - a * mbar
                x0[i:j] = self._unrotate((mbar + a * self.lam / v * resid)[:, None])
                eps[i:j] = self._unrotate((s / v * resid)[:, None])
                continue
            logj, z, v = self._terms(x[i:j], alpha[i:j], sigma[i:j])
            r = torch.softmax(logj, dim=1)[:, :, None]
            a, s = a[:, :, None], s[:, :, None]
            x0[i:j] = r[..., 0] @ mc + self._unrotate(r * (a * self.lam[None] / v) * z)
            eps[i:j] = self._unrotate(r * (s / v) * z)
        shape = x_t.shape
        return Prediction(x0=x0.reshape(shape).to(x_t.dtype), eps=eps.reshape(shape).to(x_t.dtype))

    def log_prob(self, x: torch.Tensor, t=0.0) -> torch.Tensor:
        """Exact log density of the marginal at time t (default the data, t = 0), shape (N,)."""
        xf = self._flat(x)
        tt = time_tensor(t, x).to(torch.float64)
        alpha, sigma = self.schedule.alpha(tt), self.schedule.sigma(tt)
        out = torch.empty(xf.shape[0], dtype=torch.float64)
        for i, j in self._chunks(xf.shape[0]):
            if self._shared:
                logj = self._shared_terms(self._rotate(xf[i:j])[:, 0], alpha[i:j], sigma[i:j])[0]
            else:
                logj = self._terms(xf[i:j], alpha[i:j], sigma[i:j])[0]
            out[i:j] = torch.logsumexp(logj, dim=1)
        return out.to(x.dtype if x.is_floating_point() else torch.float32)

    def sample(self, n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
        """``n`` exact samples, shape (n, *sample_shape)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        scaled = noise * self.lam.expand(self.n_components, -1)[k].sqrt()
        if self.Q is not None and self.Q.shape[0] == 1:
            scaled = scaled @ self.Q[0].T
        elif self.Q is not None:  # one matrix product per component (not an (n, d, d) gather)
            out = torch.empty_like(scaled)
            for c in torch.unique(k).tolist():
                rows = torch.nonzero(k == c)[:, 0]
                out[rows] = scaled[rows] @ self.Q[c].T
            scaled = out
        return (self.means[k] + scaled).reshape(n, *self.sample_shape).to(dtype)

    def sample_marginal(self, n: int, t, *, generator: torch.Generator | None = None, dtype=torch.float32, device=None) -> torch.Tensor:
        """``n`` exact draws of ``x_t = alpha(t) x0 + sigma(t) eps`` at one time ``t`` (where samplers start).

        >>> g = GaussianPrior(mean=[4.0])
        >>> x = g.sample_marginal(20000, 1.0, generator=torch.Generator().manual_seed(0))
        >>> a, s = float(g.schedule.alpha(torch.tensor(1.0))), float(g.schedule.sigma(torch.tensor(1.0)))
        >>> abs(float(x.mean()) - 4.0 * a) < 0.02, abs(float(x.var()) - (a * a + s * s)) < 0.03
        (True, True)
        """
        tt = torch.as_tensor(t, dtype=torch.float64)
        if tt.ndim != 0:
            raise DiffcoreError(f"sample_marginal takes one time t, got shape {tuple(tt.shape)}")
        alpha, sigma = float(self.schedule.alpha(tt)), float(self.schedule.sigma(tt))
        x0 = self.sample(n, generator=generator, dtype=torch.float64)
        eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        return (alpha * x0 + sigma * eps).to(dtype=dtype, device=device)

    def marginal(self, indices) -> GaussianMixturePrior:
        """The mixture of the coordinates ``indices`` (exact: marginals of Gaussians)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if idx.ndim != 1 or len(idx) == 0 or int(idx.min()) < 0 or int(idx.max()) >= self.dim:
            raise DiffcoreError(f"indices must be a non-empty 1-D list of coordinates in [0, {self.dim})")
        if self.kind == "identity":
            covs = None
        elif self.kind == "diagonal":
            covs = self.lam[:, idx]
        else:
            covs = self.covariances()[:, idx][:, :, idx]
        return GaussianMixturePrior(self.means[:, idx], self.weights, covs, schedule=self.schedule)

    def posterior(self, matrix, y, sigma_y: float) -> GaussianMixturePrior:
        """The exact posterior of ``x0`` given ``y = matrix @ x0 + sigma_y * n``, n ~ N(0, I).

        Per component (Kalman form, valid for sigma_y = 0 when ``A C_k A^T`` is invertible):
        ``S = A C A^T + sigma_y^2 I``, ``G = C A^T S^-1``, mean ``m + G (y - A m)``,
        covariance ``C - G A C``, weight ``∝ w_k N(y; A m_k, S)``.
        """
        A = torch.as_tensor(matrix, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
        if A.ndim != 2 or A.shape[1] != self.dim:
            raise ShapeError(f"matrix has shape {tuple(A.shape)}; expected (m, {self.dim})")
        if y.shape != (A.shape[0],):
            raise ShapeError(f"y has {y.numel()} elements; expected {A.shape[0]} (rows of the matrix)")
        if sigma_y < 0:
            raise DiffcoreError(f"sigma_y must be >= 0, got {sigma_y}")
        C = self._cov_stack()
        m = A.shape[0]
        AC = A[None] @ C  # (K|1, m, d)
        S = AC @ A.T[None] + sigma_y**2 * torch.eye(m, dtype=torch.float64)
        L, info = torch.linalg.cholesky_ex(S)
        if int(info.max()) != 0:
            raise DiffcoreError("A C A^T + sigma_y^2 I is singular: use sigma_y > 0 or a full-row-rank matrix")
        G = torch.cholesky_solve(AC, L).transpose(1, 2)  # (K|1, d, m) = C A^T S^-1
        resid = y[None] - self.means @ A.T  # (K, m)
        post_means = self.means + (G @ resid[:, :, None])[..., 0] if G.shape[0] > 1 else self.means + resid @ G[0].T
        post_covs = C - G @ AC
        post_covs = 0.5 * (post_covs + post_covs.transpose(1, 2))
        sol = torch.cholesky_solve(resid[:, :, None], L)[..., 0] if L.shape[0] > 1 else torch.cholesky_solve(resid.T, L[0]).T
        logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        loglik = -0.5 * ((resid * sol).sum(-1) + logdet + m * math.log(2 * math.pi))
        logw = torch.log(self.weights) + loglik
        weights = torch.softmax(logw, 0)
        covs = post_covs.expand(self.n_components, -1, -1)
        return GaussianMixturePrior(post_means, weights, covs, schedule=self.schedule, shape=self.sample_shape)


class GaussianPrior(GaussianMixturePrior):
    """A single Gaussian ``N(mean, cov)``: ``cov`` None (identity), (d,) diagonal or (d, d) full."""

    def __init__(self, mean, cov=None, *, schedule=None, shape=None):
        mean = torch.as_tensor(mean, dtype=torch.float64).reshape(1, -1)
        if cov is not None:
            cov = torch.as_tensor(cov, dtype=torch.float64)[None]
        super().__init__(mean, None, cov, schedule=schedule, shape=shape)
