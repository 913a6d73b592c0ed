"""An isotropic Gaussian prior ``N(mean, std^2 I)`` with exact predictions at every t.

With ``x_t = alpha x0 + sigma eps`` the noisy marginal is ``N(alpha mean, v I)``,
``v = alpha^2 std^2 + sigma^2``, and the exact noise prediction is
``E[eps | x_t] = sigma (x_t - alpha mean) / v``. The clean estimate follows from it through
diffcore's one conversion module (:meth:`diffcore.Prediction.from_eps`).

>>> import diffcore
>>> prior = IsotropicGaussian(mean=[1.0, -1.0], std=0.5)
>>> oracle = diffcore.priors.GaussianPrior([1.0, -1.0], cov=[0.25, 0.25], schedule=prior.schedule)
>>> x_t = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
>>> torch.allclose(prior.predict(x_t, 0.5).x0, oracle.predict(x_t, 0.5).x0, atol=1e-5)
True
>>> diffcore.sample(prior, 8, steps=10, generator=torch.Generator().manual_seed(0)).shape
torch.Size([8, 2])
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import Cond, Prediction, PriorBase, check_cond, time_tensor
from diffcore.schedules import DiscreteSchedule, make_schedule


class IsotropicGaussian(PriorBase):
    """Isotropic Gaussian N(mean, std^2 I), exact at every t (an example prior)

    ``PriorBase`` gives the defaults of the rest of the prior contract (unconditional, on the CPU,
    a pixel prior); ``sample_marginal`` overrides its default because this prior knows its marginal,
    so samplers start from it exactly.

    Args:
        mean: the mean of one sample; its shape is the prior's ``sample_shape``.
        std: the standard deviation of every coordinate, > 0.
        schedule: a diffcore schedule or its name (``"linear"``, ``"cosine"``, ``"vp"``, ...);
            default DDPM linear with 1000 steps.
    """

    accepts = frozenset()  # unconditional: any Cond field is rejected with a clear error
    latent = None  # a pixel prior: it has no autoencoder

    def sample_marginal(self, n: int, t, *, generator=None, dtype=torch.float32, device=None) -> torch.Tensor:
        """``n`` exact draws of ``x_t``: ``N(alpha mean, (alpha^2 std^2 + sigma^2) I)``."""
        tt = torch.as_tensor(t, dtype=torch.float64)
        alpha, sigma = float(self.schedule.alpha(tt)), float(self.schedule.sigma(tt))
        noise = torch.randn((n, *self.sample_shape), generator=generator, dtype=torch.float64)
        x = alpha * self.mean.double() + (alpha**2 * self.std**2 + sigma**2) ** 0.5 * noise
        return x.to(dtype=dtype, device=device)

    def __init__(self, mean, std: float = 1.0, *, schedule=None):
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        if self.mean.ndim == 0:
            raise ShapeError("mean is a scalar; expected the mean of one sample, e.g. [0.0, 0.0]")
        if not float(std) > 0:
            raise DiffcoreError(f"std must be > 0, got {std!r}")
        self.std = float(std)
        self.sample_shape = tuple(self.mean.shape)
        if isinstance(schedule, str):
            schedule = make_schedule(schedule)
        self.schedule = schedule if schedule is not None else DiscreteSchedule.linear(1000)

    def predict(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> Prediction:
        check_cond("{{name}}-gaussian", self.accepts, cond)
        if tuple(x_t.shape[1:]) != self.sample_shape:
            raise ShapeError(f"x_t has shape {tuple(x_t.shape)}; expected (N, {', '.join(map(str, self.sample_shape))})")
        tt = time_tensor(t, x_t)
        shape = (-1,) + (1,) * len(self.sample_shape)
        alpha = self.schedule.alpha(tt).to(x_t.dtype).reshape(shape)
        sigma = self.schedule.sigma(tt).to(x_t.dtype).reshape(shape)
        mean = self.mean.to(x_t)
        eps = sigma * (x_t - alpha * mean) / (alpha**2 * self.std**2 + sigma**2)
        return Prediction.from_eps(x_t, eps, alpha, sigma)
