"""The recipe of ``zoo:shapes``: a class-conditional point-voxel diffusion model of procedural shapes, trained on a CPU.

Data (:mod:`diff_3d.points.shapes`): fresh shapes every step, ``batch`` clouds of ``points`` points,
classes uniform over spheres, boxes, tori, cylinders and cones, labels dropped to the null class at
``label_dropout`` (classifier-free guidance, Ho & Salimans 2022). Model
(:class:`~diff_3d.points.network.PointVoxelNet`): ``blocks`` residual point-voxel blocks of ``width``
channels with a ``resolution^3`` grid of ``voxel_width`` channels. Training: PVD's objective and
schedule (epsilon, DDPM linear betas over 1000 steps) through :func:`diffcore.training.denoising_loss`
on :func:`diffcore.training.fit` (AdamW, warm-up then cosine, clipping, an EMA whose weights are
saved). The step count is fixed, so a seed gives the same weights on any CPU; it is sized for about
30 minutes of one core of the machine the weights were trained on (``recipe.json`` records the time).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from diff_3d.points.shapes import SHAPES


@dataclass(frozen=True, kw_only=True)
class ShapesRecipe:
    """Everything that defines the ``zoo:shapes`` run, except the seed."""

    name: str = "shapes"
    summary: str = "Class-conditional point clouds (512 points) of spheres, boxes, tori, cylinders and cones, point-voxel diffusion"
    classes: tuple[str, ...] = SHAPES
    points: int = 512
    width: int = 64
    resolution: int = 8
    voxel_width: int = 32
    blocks: int = 4
    label_dropout: float = 0.1
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 100
    iterations: int = 4000
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    weights_dtype: str = "float16"  # storage only: the weights load as float32

    def network_config(self) -> dict:
        return {
            "width": self.width,
            "resolution": self.resolution,
            "blocks": self.blocks,
            "classes": len(self.classes),
            "voxel_width": self.voxel_width,
        }

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


RECIPE = ShapesRecipe()

__all__ = ["RECIPE", "ShapesRecipe"]
