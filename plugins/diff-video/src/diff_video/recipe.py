"""The recipe of ``zoo:moving-digits``: a factorised space-time prior trained in two stages on a CPU.

Video LDM (Blattmann et al. 2023) trains an image model first and then only the temporal layers
inserted into it; the image model is the baseline the video model is measured against. So does
this recipe, at a size a 2-core CPU trains in at most 45 minutes:

1. ``image``: the spatial model is the ``zoo:digits`` UNet (16 x 16 class-conditional digits),
   whose convolutions already draw strokes at the scale of the moving digits; it is fine-tuned on
   single frames of moving-digit clips (a digit anywhere on a 32 x 32 canvas), labels dropped to
   the null class at ``label_dropout`` for classifier-free guidance (Ho & Salimans 2022).
2. ``temporal``: the fine-tuned image UNet is inflated (:func:`diff_video.inflate.inflate`:
   temporal convolutions after every ResNet block, temporal attention after every spatial
   attention layer, all zero-initialised) and only the temporal layers train, on clips of 8 and
   16 frames in turn (the same number of frames per step).

Both stages run on :func:`diffcore.training.fit` with :func:`diffcore.training.denoising_loss`
(DDPM's linear betas over 1000 steps, epsilon prediction: the zoo's schedule), AdamW, a linear
warm-up then a cosine, gradient clipping and an EMA of the trained weights. The step counts are
fixed (so a seed gives the same weights on any CPU) and sized to take at most 45 minutes of one
CPU core together (0.65 s per image step and 1.05 s per temporal step of process time, measured on
the 2-core machine the weights were trained on; ``recipe.json`` records each stage's CPU time).

>>> round((RECIPE.image.iterations * 0.65 + RECIPE.temporal.iterations * 1.05) / 60)
37
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from diff_video.inflate import Inflation


@dataclass(frozen=True)
class Stage:
    """One training stage: ``iterations`` AdamW steps of ``batch_frames`` frames at ``lr``, after
    ``warmup`` linear steps then a cosine, with an EMA of decay ``ema_decay``."""

    lr: float
    warmup: int
    iterations: int
    batch_frames: int
    ema_decay: float = 0.995


@dataclass(frozen=True, kw_only=True)
class VideoRecipe:
    """Everything that defines the ``zoo:moving-digits`` run, except the seed and the device."""

    name: str = "moving-digits"
    summary: str = "Class-conditional 32x32 clips of one moving scikit-learn digit, 8 to 16 frames, factorised space-time UNet"
    base: str = "zoo:digits"  # the spatial model's initial weights
    size: int = 32
    frames: tuple[int, ...] = (8, 16)  # the clip lengths of the temporal stage, in turn
    speed: int = 2  # largest |velocity| component, pixels per frame
    n_classes: int = 10
    label_dropout: float = 0.15
    inflation: Inflation = field(default_factory=lambda: Inflation(convolution=True, attention=True, kernel=3, head_dim=32, max_frames=32))
    image: Stage = field(default_factory=lambda: Stage(lr=2e-4, warmup=50, iterations=1000, batch_frames=32))
    temporal: Stage = field(default_factory=lambda: Stage(lr=5e-4, warmup=50, iterations=1500, batch_frames=32))
    grad_clip: float = 1.0
    weights_dtype: str = "float16"  # storage only: the weights load as float32
    default_frames: int = 8  # sample_shape's frame count

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


RECIPE = VideoRecipe()

__all__ = ["RECIPE", "Stage", "VideoRecipe"]
