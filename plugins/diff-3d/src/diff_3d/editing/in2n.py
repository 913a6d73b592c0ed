"""Instruct-NeRF2NeRF's iterative dataset update (Haque et al. 2023) on diff-3d's representations.

A representation is first fitted to the capture (``reconstruct_steps`` steps of photometric mean
squared error on random views). Then, while training goes on on the same loss, every
``edit_every`` steps one view of the dataset (the views in a shuffled round) is re-rendered from the
current representation, edited by the prior (:func:`diff_3d.editing.edit.sdedit`: noise to
``strength``, denoise under ``cond``) and written back in place of that view's image. Edits of
single views disagree with each other; the representation averages them into one 3-D scene, whose
renders are what the next edits start from, so the dataset drifts towards views that are both
edited and consistent (the paper's sec. 4). Everything runs on :func:`diffcore.training.fit`
(Adam), every draw from one generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from diff_3d.cameras import index
from diff_3d.editing.capture import Capture
from diff_3d.editing.edit import sdedit
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond


@dataclass
class EditRecord:
    """What the update did: the final ``dataset`` (N, C, H, W), the views edited in order, and the loss curve."""

    dataset: torch.Tensor
    edited: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def _render(representation, camera):
    from diff_3d.distill import render_for_training

    return render_for_training(representation, camera)


def fit_views(
    representation, images: torch.Tensor, cameras, *, steps: int, generator: torch.Generator, batch: int = 4, lr: float = 0.05, on_step=None
):
    """Fit ``representation`` to views (photometric MSE plus its own terms) for ``steps`` Adam steps; returns fit's record."""
    from diffcore.training import fit

    n = images.shape[0]

    def loss_fn(step: int, g: torch.Generator):
        if on_step is not None:
            on_step(step, g)
        chosen = torch.randperm(n, generator=g)[:batch]
        renders, terms = _render(representation, index(cameras, chosen))
        loss = (renders - images[chosen].to(renders)).pow(2).mean()
        return {"loss": loss + sum(terms.values()) if terms else loss}

    params = [(f"representation.{i}", p) for i, p in enumerate(p for p in representation.parameters() if p.requires_grad)]
    return fit(loss_fn, params, steps=steps, generator=generator, lr=lr, progress=False, name="in2n", multi_process=False)


def iterative_dataset_update(
    representation,
    capture: Capture,
    prior,
    *,
    cond: Cond | None = None,
    steps: int = 600,
    reconstruct_steps: int = 300,
    edit_every: int = 10,
    batch: int = 4,
    strength: float = 0.6,
    edit_steps: int = 20,
    guidance: float = 1.0,
    lr: float = 0.05,
    generator: torch.Generator,
) -> EditRecord:
    """Edit ``capture`` through ``representation`` with ``prior`` under ``cond`` (see the module docstring)."""
    if not isinstance(edit_every, int) or edit_every < 1:
        raise DiffcoreError(f"edit_every must be a positive integer, got {edit_every!r}")
    dataset = capture.images.clone()
    record = EditRecord(dataset)
    if reconstruct_steps > 0:
        fit_views(representation, capture.images, capture.cameras, steps=reconstruct_steps, generator=generator, batch=batch, lr=lr)
    order: list[int] = []

    def update(step: int, g: torch.Generator) -> None:
        if step % edit_every:
            return
        if not order:
            order.extend(torch.randperm(len(capture), generator=g).tolist())
        i = order.pop(0)
        with torch.no_grad():
            was = representation.training
            representation.eval()
            try:
                render = representation.render(index(capture.cameras, i)).detach()
            finally:
                representation.train(was)
            dataset[i] = sdedit(prior, render, cond=cond, strength=strength, steps=edit_steps, generator=g, guidance=guidance)[0]
        record.edited.append(i)

    result = fit_views(representation, dataset, capture.cameras, steps=steps, generator=generator, batch=batch, lr=lr, on_step=update)
    record.losses = list(result.losses)
    return record
