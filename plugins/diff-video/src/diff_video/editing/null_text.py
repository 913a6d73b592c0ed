"""Null-text inversion (Mokady et al. 2023, Alg. 1): unconditional embeddings per step that make guided DDIM retrace the inversion.

DDIM inversion is exact only for the model it ran with; sampled back with classifier-free
guidance of scale ``w > 1`` the trajectory drifts and the edit loses the source. Null-text
inversion keeps the guided model and changes its unconditional input instead: with the DDIM
inversion under the source condition as the pivot ``z*_{t_K} ... z*_{t_0}`` (descending times),
it starts at ``z_{t_0} = z*_{t_0}`` and, for each step ``t -> s``, fits the null embedding
``N_t`` (started at the previous step's) by Adam to

    min_N || z*_s - DDIM_step(z_t; eps_u(z_t, N) + w (eps_c(z_t, source) - eps_u(z_t, N))) ||^2,

then steps with it. The edit then guides towards the target with ``N_t`` as the unconditional
input at step ``t`` (:class:`NullTextGuided`). The frames of a chunk share each ``N_t``.
The prior's unconditional condition must be an embedding (text priors: the empty prompt's
embedding); a class-conditional prior's null label is an index and cannot be fitted.
"""

from __future__ import annotations

import dataclasses

import torch

from diff_video.editing.inversion import clean_estimate
from diffcore import Cond
from diffcore.errors import DiffcoreError
from diffcore.priors import Guided
from diffcore.priors.wrapper import PriorWrapper
from diffcore.samplers.ddim import ddim_step


def null_embedding(prior) -> tuple[str, torch.Tensor]:
    """The field and tensor of ``prior``'s unconditional condition that null-text inversion fits."""
    null = prior.null_cond
    fields = [] if null is None else [f.name for f in dataclasses.fields(null) if getattr(null, f.name) is not None]
    if len(fields) != 1 or not isinstance(getattr(null, fields[0]), torch.Tensor) or not getattr(null, fields[0]).is_floating_point():
        raise DiffcoreError(
            "null-text inversion needs a prior whose unconditional condition is an embedding (a text prior such as Stable Diffusion); "
            "this one's is " + ("missing" if null is None else repr(sorted(fields)) + " of class indices")
        )
    return fields[0], getattr(null, fields[0])


def fit_nulls(prior, trajectory: list[torch.Tensor], times, source: Cond, guidance: float, *, iterations: int = 10, lr: float = 1e-2):
    """The null embeddings, one per step of the descending ``times``, for the pivot ``trajectory`` (``x`` at each time, descending)."""
    if float(guidance) == 1.0:
        raise DiffcoreError("null-text inversion fits the unconditional input of guidance; it needs guidance other than 1")
    field, null = null_embedding(prior)
    times = torch.as_tensor(times, dtype=torch.float64)
    schedule = prior.schedule
    z = trajectory[0]
    nulls = []
    current = null.detach().clone().float()
    for j in range(len(times) - 1):
        t, s = times[j], times[j + 1]
        current = current.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([current], lr=lr)
        for _ in range(iterations):
            with torch.enable_grad():
                guided = Guided(prior, guidance, source, Cond(**{field: current.to(null.dtype)}))
                eps = guided.predict(z, t).eps
                step = ddim_step(clean_estimate(schedule, z, eps, t), eps, schedule, t, s)
                loss = (step - trajectory[j + 1]).pow(2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        current = current.detach()
        nulls.append(current.to(null.dtype))
        with torch.no_grad():
            eps = Guided(prior, guidance, source, Cond(**{field: nulls[-1]})).predict(z, t).eps
            z = ddim_step(clean_estimate(schedule, z, eps, t), eps, schedule, t, s)
    return nulls


class NullTextGuided(PriorWrapper):
    """Classifier-free guidance towards ``cond`` with the fitted null embedding of the step at ``t`` as the unconditional input."""

    changes_distribution = True

    def __init__(self, prior, scale: float, cond: Cond, nulls: list[torch.Tensor], times):
        super().__init__(prior)
        self.field, _ = null_embedding(prior)
        self.scale, self.cond, self.nulls = float(scale), cond, list(nulls)
        self.times = torch.as_tensor(times, dtype=torch.float64)[: len(self.nulls)]

    def predict(self, x_t, t, cond=None):
        step = int((self.times - float(torch.as_tensor(t, dtype=torch.float64).reshape(-1)[0])).abs().argmin())
        uncond = Cond(**{self.field: self.nulls[step]})
        return Guided(self.prior, self.scale, self.cond, uncond).predict(x_t, t, cond)


__all__ = ["NullTextGuided", "fit_nulls", "null_embedding"]
