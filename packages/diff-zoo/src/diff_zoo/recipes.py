"""One training recipe per zoo prior, as small frozen dataclasses.

A :class:`Recipe` names its data (a builder of :mod:`diff_zoo.data` and its options), the
``UNet2DModel`` (:class:`UNetConfig`), the noise schedule (:class:`NoiseSchedule`: DDPM's linear
betas over 1000 steps, epsilon prediction), the optimiser (AdamW, warm-up then cosine or
constant learning rate, EMA of the weights) and two budgets: ``gpu`` (the shipped weights,
trained on one GPU) and ``cpu`` (what fits in 45 minutes on a 2-core CPU). Change a recipe with
:func:`dataclasses.replace`:

>>> import dataclasses
>>> tiny = dataclasses.replace(RECIPES["digits"], unet=dataclasses.replace(RECIPES["digits"].unet, block_out_channels=(8, 16, 16)))
>>> tiny.unet.diffusers_config(tiny.n_classes)["num_class_embeds"]
11
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from diffcore.errors import DiffcoreError, closest


@dataclass(frozen=True)
class UNetConfig:
    """A diffusers ``UNet2DModel``: one level per entry of ``block_out_channels``.

    ``attention`` says which levels (highest resolution first) use attention blocks;
    ``mid_attention`` whether the middle block has one. A model without attention is fully
    convolutional: trained on crops of ``sample_size``, it runs on any size divisible by
    ``2 ** (levels - 1)``.
    """

    sample_size: int
    channels: int
    block_out_channels: tuple[int, ...]
    layers_per_block: int = 2
    attention: tuple[bool, ...] | None = None
    mid_attention: bool = False
    norm_num_groups: int = 8
    attention_head_dim: int = 8
    dropout: float = 0.0

    def diffusers_config(self, n_classes: int = 0) -> dict[str, Any]:
        """Keyword arguments of ``UNet2DModel``; ``n_classes > 0`` adds ``n_classes + 1`` class embeddings (the last is the null class)."""
        levels = len(self.block_out_channels)
        attention = self.attention or (False,) * levels
        if len(attention) != levels:
            raise DiffcoreError(f"attention has {len(attention)} entries; expected one per level ({levels})")
        down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention)
        up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention))
        return {
            "sample_size": self.sample_size,
            "in_channels": self.channels,
            "out_channels": self.channels,
            "block_out_channels": tuple(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "down_block_types": down,
            "up_block_types": up,
            "add_attention": self.mid_attention,
            "norm_num_groups": self.norm_num_groups,
            "attention_head_dim": self.attention_head_dim,
            "dropout": self.dropout,
            "class_embed_type": None,
            "num_class_embeds": n_classes + 1 if n_classes else None,
        }

    @property
    def fully_convolutional(self) -> bool:
        return not self.mid_attention and not any(self.attention or ())


@dataclass(frozen=True)
class NoiseSchedule:
    """The forward process, saved as the pipeline's ``DDIMScheduler`` config.

    DDPM (Ho et al. 2020): betas linear from ``beta_start`` to ``beta_end`` over
    ``num_train_timesteps`` steps; the network predicts the noise (``epsilon``). ``clip_sample``
    is what samplers do with the predicted x0 (diffusers' default); it does not affect training.
    """

    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"
    clip_sample: bool = True

    def scheduler_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Budget:
    """How long to train: optimiser steps and batch size."""

    iterations: int
    batch_size: int


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """Everything that defines a zoo prior's training run, except the seed and the device."""

    name: str
    summary: str
    data: str
    data_options: dict[str, Any] = field(default_factory=dict)
    unet: UNetConfig
    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)
    n_classes: int = 0
    label_dropout: float = 0.0  # share of labels replaced by the null class (classifier-free guidance)
    hflip: bool = False
    vflip: bool = False
    lr: float = 5e-4
    lr_schedule: str = "cosine"  # or "constant"; both after a linear warm-up
    warmup: int = 200
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    gpu: Budget
    cpu: Budget
    weights_dtype: str = "float16"  # storage only: the weights load as float32
    cpu_autocast: bool = False  # bf16 autocast on the CPU too (fast where the CPU has bf16 instructions, e.g. AVX512-BF16)
    notes: str = ""

    def __post_init__(self):
        if self.lr_schedule not in ("cosine", "constant"):
            raise DiffcoreError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        if self.n_classes == 0 and self.label_dropout:
            raise DiffcoreError("label_dropout needs a class-conditional recipe (n_classes > 0)")
        if self.schedule.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise DiffcoreError(f"prediction_type must be epsilon, v_prediction or sample, got {self.schedule.prediction_type!r}")
        if self.weights_dtype not in ("float16", "float32"):
            raise DiffcoreError(f"weights_dtype must be float16 or float32, got {self.weights_dtype!r}")

    def budget(self, device_type: str) -> Budget:
        """The default budget for a device type (``cuda`` uses ``gpu``, anything else ``cpu``)."""
        return self.gpu if device_type == "cuda" else self.cpu

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            name="digits",
            summary="Class-conditional 16x16 handwritten digits (scikit-learn), with a null class for classifier-free guidance",
            data="digits",
            unet=UNetConfig(
                sample_size=16,
                channels=1,
                block_out_channels=(32, 64, 64),
                layers_per_block=2,
                attention=(False, False, True),
                mid_attention=True,
            ),
            n_classes=10,
            label_dropout=0.15,
            lr=5e-4,
            gpu=Budget(iterations=20000, batch_size=256),
            cpu=Budget(iterations=5720, batch_size=64),  # 45 min at 2.1 it/s on a 2-core CPU: the shipped run
            notes="No flips: digits are not mirror symmetric. Labels 0-9; label 10 is the null class.",
        ),
        Recipe(
            name="patches",
            summary="Unconditional 32x32 RGB patches of photographs (scikit-image, scikit-learn), fully convolutional",
            data="patches",
            unet=UNetConfig(sample_size=32, channels=3, block_out_channels=(32, 64, 128), layers_per_block=2),
            hflip=True,
            lr=5e-4,
            gpu=Budget(iterations=20000, batch_size=256),
            cpu=Budget(iterations=4000, batch_size=48),
            notes="Held-out test photo: skimage.data.astronaut. Horizontal flips only (photos are not upside-down symmetric).",
        ),
        Recipe(
            name="textures",
            summary="Brick, grass and gravel textures (scikit-image), 32x32, one channel, conditional on the texture; fully convolutional",
            data="textures",
            unet=UNetConfig(sample_size=32, channels=1, block_out_channels=(32, 64, 96), layers_per_block=2),
            n_classes=3,
            label_dropout=0.15,
            hflip=True,
            vflip=True,
            lr=5e-4,
            gpu=Budget(iterations=20000, batch_size=256),
            cpu=Budget(iterations=4500, batch_size=48),
            notes="Labels 0 brick, 1 grass, 2 gravel; label 3 is the null class. One channel: the textures are grayscale. "
            "Held out: the bottom quarter of each texture.",
        ),
        Recipe(
            name="phantoms",
            summary="64x64 random-ellipse phantoms (Shepp-Logan style), one channel, for CT and MRI reconstruction",
            data="phantoms",
            unet=UNetConfig(
                sample_size=64,
                channels=1,
                block_out_channels=(16, 48, 96, 128),
                layers_per_block=1,
                attention=(False, False, False, True),
                mid_attention=True,
            ),
            schedule=NoiseSchedule(prediction_type="v_prediction"),
            hflip=True,
            vflip=True,
            lr=5e-4,
            cpu_autocast=True,
            gpu=Budget(iterations=20000, batch_size=128),
            cpu=Budget(iterations=3850, batch_size=24),  # 44 min at 1.5 it/s (bf16 autocast) on a 2-core CPU: the shipped run
            notes="Held-out test image: skimage.data.shepp_logan_phantom (never generated). Flips keep the phantom distribution. "
            "v-prediction: with epsilon prediction a 3000-step CPU run left DDIM samples noisy (piecewise-constant images show every "
            "residual); v weights the x0 error by 1 + SNR and gave clean samples at the same budget.",
        ),
    ]
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; unknown names list the known ones."""
    name = name.removeprefix("zoo:")
    if name not in RECIPES:
        hint = closest(name, RECIPES)
        raise DiffcoreError(f"unknown zoo recipe {name!r}; known: {', '.join(RECIPES)}" + (f". Did you mean {hint!r}?" if hint else ""))
    return RECIPES[name]
