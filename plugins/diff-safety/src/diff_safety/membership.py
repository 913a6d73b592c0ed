"""Loss-based membership inference: was an image in the training set?

A diffusion model denoises its training images better than images it never saw. The attack of
Carlini et al. (2023, sec. 6.1; also Matsumoto et al. 2023) scores an image ``x0`` by the
denoising loss at a few fixed times ``t``::

    loss(x0) = mean over t and over noise draws eps of  |eps_hat(alpha_t x0 + sigma_t eps, t, c) - eps|^2 / D

and calls images with a low loss members. Carlini et al. find intermediate noise levels the most
telling (t = 100 of T = 1000 on CIFAR-10: the model's own predictions at very low noise are too
easy, at high noise too hard). :func:`membership_inference` computes the loss of members and of
held-out non-members with the same noise draws and reports the ROC AUC of the score ``-loss``
(0.5: no information; 1: members always have the lower loss) and the true-positive rate at a
low false-positive rate (Carlini et al. 2022, "Membership Inference Attacks From First
Principles", argue for the latter). Works with any prior: the loss reads ``predict(...).eps``;
a latent prior's images are encoded first.

>>> roc_auc(torch.tensor([3.0, 2.0, 2.0]), torch.tensor([1.0, 2.0]))   # ties count one half
0.8333333333333334
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import Cond, check_prior_attributes


def roc_auc(positive, negative) -> float:
    """The area under the ROC curve of scores ``positive`` against ``negative``: P(s+ > s-) + P(s+ = s-) / 2 (Mann-Whitney U / n+ n-)."""
    pos = torch.as_tensor(positive, dtype=torch.float64).reshape(-1)
    neg = torch.as_tensor(negative, dtype=torch.float64).reshape(-1)
    if pos.numel() == 0 or neg.numel() == 0:
        raise DiffcoreError("the ROC AUC needs at least one member and one non-member score")
    both = torch.cat([pos, neg])
    order = torch.argsort(both, stable=True)
    ranks = torch.empty_like(both)
    ranks[order] = torch.arange(1, both.numel() + 1, dtype=torch.float64)
    values, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    # the average rank of each tied value: sum of its ranks / count
    sums = torch.zeros(values.numel(), dtype=torch.float64).scatter_add_(0, inverse, ranks)
    ranks = (sums / counts)[inverse]
    u = ranks[: pos.numel()].sum() - pos.numel() * (pos.numel() + 1) / 2
    return float(u / (pos.numel() * neg.numel()))


def tpr_at_fpr(positive, negative, fpr: float = 0.01) -> float:
    """The share of ``positive`` scores above the threshold that lets through at most ``fpr`` of ``negative``."""
    pos = torch.as_tensor(positive, dtype=torch.float64).reshape(-1)
    neg = torch.sort(torch.as_tensor(negative, dtype=torch.float64).reshape(-1), descending=True).values
    allowed = int(fpr * neg.numel())  # negatives allowed strictly above the threshold
    threshold = neg[allowed] if allowed < neg.numel() else neg[-1] - 1
    return float((pos > threshold).double().mean())


def _batch_cond(cond: Cond | None, index: torch.Tensor, n_total: int) -> Cond | None:
    """The rows ``index`` of a per-image cond (fields with batch ``n_total``); broadcast fields stay."""
    if cond is None:
        return None
    out = {}
    for name in ("text", "labels", "camera", "image"):
        value = getattr(cond, name)
        if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == n_total and n_total > 1:
            value = value[index.to(value.device)]
        elif isinstance(value, list) and len(value) == n_total and n_total > 1:
            value = [value[i] for i in index.tolist()]
        out[name] = value
    return Cond(**out)


@torch.no_grad()
def denoising_losses(
    prior, images, *, times: Sequence[float] = (0.1,), draws: int = 4, cond: Cond | None = None, generator: torch.Generator, batch: int = 64
) -> torch.Tensor:
    """The mean per-value denoising loss of each image (N,) at ``times``, over ``draws`` noise draws each.

    ``cond`` conditions the prior: batch 1 (for all images) or N (one per image). Noise is drawn
    from ``generator`` in a fixed order (batch by batch, time by time, draw by draw), so two
    calls with equally seeded generators on sets of the same size use the same noise.
    """
    x = torch.as_tensor(images).float()
    if x.ndim < 2 or x.shape[0] == 0:
        raise ShapeError(f"images have shape {tuple(x.shape)}; expected (N, ...) with N >= 1")
    times = [float(t) for t in times]
    if not times or any(not 0.0 < t <= 1.0 for t in times):
        raise DiffcoreError(f"times must be in (0, 1] (t = 0 is the data); got {times}")
    if not isinstance(draws, int) or draws < 1:
        raise DiffcoreError(f"draws must be a positive integer; got {draws!r}")
    check_prior_attributes(prior)
    latent, device = prior.latent, prior.device
    losses = torch.zeros(x.shape[0], dtype=torch.float64)
    for start in range(0, x.shape[0], batch):
        index = torch.arange(start, min(start + batch, x.shape[0]))
        x0 = x[index]
        if latent is not None:
            x0 = latent.encode(x0.to(device)).float().cpu()
        if tuple(x0.shape[1:]) != tuple(prior.sample_shape):
            raise ShapeError(f"images give samples of shape {tuple(x0.shape[1:])}; the prior's are {tuple(prior.sample_shape)}")
        c = _batch_cond(cond, index, x.shape[0])
        for t in times:
            tt = torch.tensor(t, dtype=torch.float64)
            alpha, sigma = float(prior.schedule.alpha(tt)), float(prior.schedule.sigma(tt))
            for _ in range(draws):
                eps = torch.randn(x0.shape, generator=generator)
                x_t = (alpha * x0 + sigma * eps).to(device)
                pred = prior.predict(x_t, t, c).eps.float().cpu()
                losses[index] += (pred - eps).pow(2).reshape(len(index), -1).mean(1).double()
    return (losses / (len(times) * draws)).float()


@dataclass
class MembershipResult:
    """Losses of members and non-members, the ROC AUC of ``-loss`` and the TPR at 1% FPR."""

    member_losses: torch.Tensor
    non_member_losses: torch.Tensor
    auc: float
    tpr_at_1pct_fpr: float
    times: tuple[float, ...]
    draws: int
    info: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "auc": round(self.auc, 4),
            "tpr_at_1pct_fpr": round(self.tpr_at_1pct_fpr, 4),
            "times": list(self.times),
            "draws": self.draws,
            "members": int(self.member_losses.numel()),
            "non_members": int(self.non_member_losses.numel()),
            "mean_loss_members": round(float(self.member_losses.mean()), 6),
            "mean_loss_non_members": round(float(self.non_member_losses.mean()), 6),
        }


def membership_inference(
    prior,
    members,
    non_members,
    *,
    times: Sequence[float] = (0.1,),
    draws: int = 4,
    member_cond: Cond | None = None,
    non_member_cond: Cond | None = None,
    seed: int = 0,
    batch: int = 64,
) -> MembershipResult:
    """The loss attack on ``members`` (training images) against held-out ``non_members`` (see the module docstring).

    Both sets see noise from generators seeded with ``seed``, so equal-sized sets get the same noise.
    """
    member_losses = denoising_losses(
        prior, members, times=times, draws=draws, cond=member_cond, generator=torch.Generator().manual_seed(seed), batch=batch
    )
    non_member_losses = denoising_losses(
        prior, non_members, times=times, draws=draws, cond=non_member_cond, generator=torch.Generator().manual_seed(seed), batch=batch
    )
    return MembershipResult(
        member_losses,
        non_member_losses,
        roc_auc(-member_losses, -non_member_losses),
        tpr_at_fpr(-member_losses, -non_member_losses, 0.01),
        tuple(float(t) for t in times),
        draws,
    )


__all__ = ["MembershipResult", "denoising_losses", "membership_inference", "roc_auc", "tpr_at_fpr"]
