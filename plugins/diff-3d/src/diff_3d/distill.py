"""The distillation loop without nerfstudio: any representation, any distiller, any prior, on :func:`diffcore.training.fit`.

Each step draws ``batch`` cameras (:class:`~diff_3d.cameras.CameraSampler`), renders them, asks the
distiller for its loss (the camera's pose goes into ``cond.camera`` when the prior is
view-conditioned), adds the representation's own regularisation, and lets the distiller update its
own parameters (VSD's second model) on the detached renders. ``fit`` owns the optimiser (Adam on
the representation), the learning rate, clipping and the log; every random draw comes from the
generator passed in. A distiller that only has kernel 0.1's ``grad`` (:class:`diffcore.protocols.Distiller`)
is used through the same stop-gradient loss.

>>> import torch
>>> from diffcore.priors import GaussianPrior
>>> from diff_3d.distillers import SDS
>>> from diff_3d.representations import ImageRepresentation
>>> prior = GaussianPrior(torch.full((3 * 4 * 4,), 0.5), torch.full((48,), 1e-4), shape=(3, 4, 4))
>>> image = ImageRepresentation(size=4)
>>> record = distill(prior, image, SDS(weighting="uniform"), steps=100, lr=0.05, generator=torch.Generator().manual_seed(0))
>>> abs(float(image.render(None).detach().mean()) - 0.5) < 0.05
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from diff_3d.cameras import CameraSampler, to_device
from diff_3d.distillers.base import surrogate_loss, with_camera
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond, Distillation, Distiller, LossDistiller, Representation
from diffcore.training import fit


@dataclass
class DistillRecord:
    """What :func:`distill` did: per-step ``losses`` and ``logs``, the ``curve`` of evaluations ``(step, value)``, time and speed."""

    steps: int
    losses: list[float]
    logs: dict[str, list[float]]
    curve: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    train_time_s: float = 0.0
    iterations_per_s: float | None = None


class GradOnly:
    """A kernel 0.1 distiller (``grad`` only) as a :class:`~diffcore.protocols.LossDistiller`: its gradient through the surrogate loss."""

    def __init__(self, distiller: Distiller):
        self.distiller = distiller

    def loss(self, prior, images, cond, *, step, total_steps, generator, camera=None) -> Distillation:
        g = self.distiller.grad(prior, images.detach(), cond, step)
        return Distillation(surrogate_loss(images, g), {})

    def parameters(self):
        return []

    def update(self, prior, images, cond, *, step, total_steps, generator, camera=None) -> dict:
        return {}


def as_loss_distiller(distiller) -> LossDistiller:
    """``distiller`` itself when it has a loss, else its ``grad`` through the surrogate loss; an error for anything else."""
    if isinstance(distiller, LossDistiller):
        return distiller
    if isinstance(distiller, Distiller):
        return GradOnly(distiller)
    raise DiffcoreError(
        f"{type(distiller).__name__} is not a distiller: it needs loss(...) (diffcore.protocols.LossDistiller) or grad(...)"
    )


def render_for_training(representation, camera) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Renders of ``camera`` and the representation's own loss terms (diff-3d's volumes have some; other representations none)."""
    from diff_3d.representations.volume import VolumeRepresentation

    if isinstance(representation, VolumeRepresentation):
        return representation.render_for_training(camera)
    return representation.render(camera), {}


def distill(
    prior,
    representation,
    distiller,
    *,
    steps: int,
    generator: torch.Generator,
    cond: Cond | None = None,
    cameras: CameraSampler | None = None,
    batch: int = 1,
    lr: float = 0.01,
    optimizer: str = "adam",
    grad_clip: float | None = None,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    eval_every: int = 100,
    on_step: Callable[[int, float, dict[str, float]], None] | None = None,
    progress: bool | str = False,
    max_minutes: float | None = None,
) -> DistillRecord:
    """Optimise ``representation`` so that its renders score well under ``prior`` by ``distiller``.

    Args:
        prior: any diffcore prior (pixel or latent, composed or not); view-conditioned priors get
            each render's pose in ``cond.camera``.
        representation: a :class:`~diffcore.protocols.Representation` (``parameters()`` train).
        distiller: a :class:`~diffcore.protocols.LossDistiller` (or a kernel 0.1 ``grad`` distiller).
        steps, generator: optimiser steps, and the source of every draw (cameras, times, noise).
        cond: the condition (text, labels) the prior is asked for; cameras: where renders are seen
            from (default :class:`~diff_3d.cameras.CameraSampler()`); batch: cameras per step.
        lr, optimizer, grad_clip, max_minutes, progress: passed to :func:`diffcore.training.fit`.
        evaluate: ``evaluate(step) -> {name: value}``, called every ``eval_every`` steps and at the end,
            collected in ``curve``; on_step: ``on_step(step, loss, logs)`` for every step.
    """
    if not isinstance(representation, Representation):
        raise DiffcoreError(f"{type(representation).__name__} is not a representation: it needs render(camera) and parameters()")
    objective = as_loss_distiller(distiller)
    params = [p for p in representation.parameters() if p.requires_grad]
    if not params:
        raise DiffcoreError(f"{type(representation).__name__} has no trainable parameters")
    if not isinstance(batch, int) or batch < 1:
        raise DiffcoreError(f"batch must be a positive integer, got {batch!r}")
    if not isinstance(eval_every, int) or eval_every < 1:
        raise DiffcoreError(f"eval_every must be a positive integer, got {eval_every!r}")
    cameras = cameras if cameras is not None else CameraSampler()
    curve: list[tuple[int, dict[str, float]]] = []

    device = params[0].device

    def loss_fn(step: int, g: torch.Generator):
        camera = to_device(cameras.sample(batch, g), device)  # drawn on the CPU generator, rendered where the representation lives
        images, terms = render_for_training(representation, camera)
        c = with_camera(prior, cond, camera)
        out = objective.loss(prior, images, c, step=step, total_steps=steps, generator=g, camera=camera)
        logs = dict(out.logs)
        loss = out.loss
        for name, term in terms.items():
            loss, logs[name] = loss + term, term.detach()
        logs.update(objective.update(prior, images.detach(), c, step=step, total_steps=steps, generator=g, camera=camera))
        return {"loss": loss, **logs}

    def callback(step: int, loss: float, logs: dict[str, float]) -> None:
        if on_step is not None:
            on_step(step, loss, logs)
        if evaluate is not None and (step % eval_every == 0 or step == steps):
            curve.append((step, dict(evaluate(step))))

    log_every = eval_every if evaluate is not None else None
    record = fit(
        loss_fn,
        [(f"representation.{i}", p) for i, p in enumerate(params)],
        steps=steps,
        generator=generator,
        optimizer=optimizer,
        lr=lr,
        grad_clip=grad_clip,
        max_minutes=max_minutes,
        progress=progress,
        name="distillation",
        log_every=log_every,
        callback=callback,
    )
    return DistillRecord(record.steps, record.losses, record.logs, curve, record.train_time_s, record.iterations_per_s)
