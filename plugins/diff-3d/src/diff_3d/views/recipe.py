"""The recipe of ``zoo:views``: a small view-conditioned prior trained from scratch on a CPU.

Zero-1-to-3 (Liu et al. 2023) fine-tunes Stable Diffusion on pairs of renders of one Objaverse
object from two cameras, conditioned on the first render and the relative pose. This recipe keeps
the task and shrinks everything else to what a shared 2-core CPU trains in at most 30 minutes of
wall time: pairs of 32 x 32 views of procedural scenes of coloured primitives
(:mod:`diff_3d.views.data`, fresh scenes every step, so the prior never sees a training scene
twice), a pixel-space UNet (:class:`diff_3d.views.network.ViewUNet`) trained by
:func:`diffcore.training.fit` on :func:`diffcore.training.denoising_loss` (DDPM's linear betas
over 1000 steps: the zoo's schedule; v-prediction, Salimans & Ho 2022, whose loss still weights the
high noise levels, where a short run of epsilon-prediction learnt too little of the layout to sample
from), AdamW with a linear warm-up then a
cosine, gradient clipping and an EMA of the weights (what is saved). The reference and the pose
are dropped together for a share ``cond_dropout`` of the pairs (classifier-free guidance, Ho &
Salimans 2022). The run stops at ``iterations`` steps or at ``max_minutes`` of wall time, whichever
comes first (``recipe.json`` records the steps done).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from diff_3d.views.network import NetworkConfig


@dataclass(frozen=True, kw_only=True)
class ViewRecipe:
    """Everything that defines the ``zoo:views`` run, except the seed and the device."""

    name: str = "views"
    summary: str = "32x32 novel views of procedural scenes of coloured primitives from one reference view and the relative pose"
    network: NetworkConfig = field(
        default_factory=lambda: NetworkConfig(block_out_channels=(32, 64, 64), layers_per_block=1, attention=(False, False, True))
    )
    prediction_type: str = "v_prediction"  # the layout is taught at high noise too (Salimans & Ho 2022)
    most: int = 3  # primitives per scene, at most
    batch: int = 24
    lr: float = 5e-4
    warmup: int = 100
    iterations: int = 4000
    max_minutes: float = 27.0
    ema_decay: float = 0.995
    cond_dropout: float = 0.1
    grad_clip: float = 1.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


RECIPE = ViewRecipe()
