"""The baseline of the cards: a Gaussian fitted to the training images, per class for conditional priors.

``N(m, C)`` with the training images' pixel mean and covariance (the best a model that sees only
first and second moments can do; Gaussian samples reproduce the data's power spectrum).
Samples are clipped to the image range [-1, 1], as a diffusion prior's samples are. For a
large training set, ``max_images`` images picked at random (seeded) give the moments: the
covariance of 3072 pixels from 8192 images is accurate to a few per cent, enough for a baseline.

>>> import torch
>>> x = torch.randn(2000, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * 0.1 + 0.5
>>> g = FittedGaussian.fit(x)
>>> s = g.sample(4000, generator=torch.Generator().manual_seed(1))
>>> bool((s.mean(0) - 0.5).abs().max() < 0.01), bool((s.std(0) - 0.1).abs().max() < 0.01)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffcore.errors import DiffcoreError


@dataclass(frozen=True, eq=False)
class FittedGaussian:
    """Per-class means (K, D) and Cholesky factors (K, D, D) of the fitted covariances; K = 1 without labels."""

    means: torch.Tensor
    factors: torch.Tensor
    shape: tuple[int, ...]

    @classmethod
    def fit(cls, images: torch.Tensor, labels: torch.Tensor | None = None, *, max_images: int = 8192, seed: int = 0) -> FittedGaussian:
        images = torch.as_tensor(images)
        shape = tuple(images.shape[1:])
        flat = images.reshape(len(images), -1)
        groups = [torch.arange(len(flat))] if labels is None else [torch.nonzero(labels == k)[:, 0] for k in range(int(labels.max()) + 1)]
        g = torch.Generator().manual_seed(seed)
        means, factors = [], []
        for idx in groups:
            if len(idx) < 2:
                raise DiffcoreError("each class needs at least two training images to fit a Gaussian")
            if len(idx) > max_images:
                idx = idx[torch.randperm(len(idx), generator=g)[:max_images]]
            x = flat[idx].to(torch.float32)
            mean = x.mean(0)
            centred = x - mean
            cov = (centred.T @ centred).to(torch.float64) / (len(x) - 1)  # float32 product: twice as fast, plenty for a baseline
            jitter = 1e-6 * float(cov.diagonal().mean()) + 1e-10  # pixels that never vary make C singular
            eye = torch.eye(cov.shape[0], dtype=torch.float64)
            factor, info = torch.linalg.cholesky_ex(cov + jitter * eye)
            if int(info):
                factor = torch.linalg.cholesky(cov + 1e3 * jitter * eye)
            means.append(mean.to(torch.float64))
            factors.append(factor)
        return cls(torch.stack(means), torch.stack(factors), shape)

    def sample(self, n: int, labels: torch.Tensor | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples (of class ``labels[i]``, for a per-class fit), clipped to [-1, 1], float32 (n, *shape)."""
        k = torch.zeros(n, dtype=torch.long) if labels is None else torch.as_tensor(labels, dtype=torch.long).cpu()
        if len(k) != n or int(k.max()) >= len(self.means):
            raise DiffcoreError(f"need {n} labels below {len(self.means)}, got {tuple(k.shape)} with max {int(k.max())}")
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        x = torch.empty_like(z)
        for c in k.unique().tolist():
            rows = k == c
            x[rows] = self.means[c] + z[rows] @ self.factors[c].T
        return x.clamp(-1, 1).to(torch.float32).reshape(n, *self.shape)


__all__ = ["FittedGaussian"]
