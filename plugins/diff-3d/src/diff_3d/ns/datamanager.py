"""A nerfstudio data manager without images: random orbit cameras from a seeded generator.

Like nerfstudio's ``RandomCamerasDataManager`` (generfacto's), but its cameras come from
:class:`diff_3d.cameras.CameraSampler` (azimuth, elevation, radius and field of view ranges; the
project's camera convention) drawn from a ``torch.Generator`` seeded with ``seed``, and each batch
carries the diffcore :class:`~diffcore.protocols.Camera` that rendered it (``batch["camera"]``), which
the distiller and view-conditioned priors take. Evaluation and the viewer see ``eval_views`` fixed
held-out cameras (:meth:`CameraSampler.held_out`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

import torch
from nerfstudio.data.datamanagers.base_datamanager import DataManager, DataManagerConfig
from nerfstudio.data.datamanagers.random_cameras_datamanager import TrivialDataset
from nerfstudio.data.utils.dataloaders import RandIndicesEvalDataloader

from diff_3d.cameras import CameraSampler, to_device
from diff_3d.ns.cameras import ray_bundle, to_nerfstudio


@dataclass
class DistillCamerasDataManagerConfig(DataManagerConfig):
    """Random orbit cameras for score distillation (see the module docstring)."""

    _target: type = field(default_factory=lambda: DistillCamerasDataManager)
    resolution: int = 64
    """Training image size in pixels (square)."""
    eval_resolution: int = 64
    """Evaluation image size."""
    images_per_batch: int = 1
    """Cameras per training step."""
    radius: tuple[float, float] = (2.2, 2.8)
    """Orbit radius range."""
    elevation: tuple[float, float] = (-10.0, 45.0)
    """Elevation range in degrees (0: level with the object's centre)."""
    azimuth: tuple[float, float] = (-180.0, 180.0)
    """Azimuth range in degrees (0: the front, on -y)."""
    fov: tuple[float, float] = (40.0, 60.0)
    """Field of view range in degrees."""
    eval_views: int = 16
    """Held-out views for evaluation images."""
    seed: int = 0
    """Seed of the camera generator."""


class DistillCamerasDataManager(DataManager):
    """Serves random cameras' rays for training and held-out cameras for evaluation (see the module docstring)."""

    config: DistillCamerasDataManagerConfig

    def __init__(
        self,
        config: DistillCamerasDataManagerConfig,
        device: torch.device | str = "cpu",
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        **kwargs,
    ):
        self.config = config
        self.device = device
        self.world_size, self.local_rank = world_size, local_rank
        self.test_mode = test_mode
        self.sampler = CameraSampler(
            size=config.resolution, radius=config.radius, elevation=config.elevation, azimuth=config.azimuth, fov=config.fov
        )
        self.eval_sampler = CameraSampler(
            size=config.eval_resolution, radius=config.radius, elevation=config.elevation, azimuth=config.azimuth, fov=config.fov
        )
        self.generator = torch.Generator().manual_seed(config.seed + local_rank)
        if config.data is not None:
            print("diff-3d: --data is not used by the distillation methods (they see random cameras, no images)", file=sys.stderr)
            raise SystemExit(2)
        held_out = to_nerfstudio(self.eval_sampler.held_out(config.eval_views)).to(device)
        self.train_dataset = TrivialDataset(held_out)
        self.eval_dataset = TrivialDataset(held_out)
        self.eval_dataloader = RandIndicesEvalDataloader(input_dataset=self.eval_dataset, device=self.device, num_workers=0)
        DataManager.__init__(self)

    def _batch(self, sampler: CameraSampler, n: int):
        camera = to_device(sampler.sample(n, self.generator), self.device)
        return ray_bundle(camera), {"camera": camera}

    def next_train(self, step: int):
        self.train_count += 1
        return self._batch(self.sampler, self.config.images_per_batch)

    def next_eval(self, step: int):
        self.eval_count += 1
        return self._batch(self.eval_sampler, 1)

    def next_eval_image(self, step: int):
        for camera, batch in self.eval_dataloader:
            return camera, batch
        raise ValueError("no evaluation views")

    def get_train_rays_per_batch(self) -> int:
        return self.config.images_per_batch * self.config.resolution**2

    def get_eval_rays_per_batch(self) -> int:
        return self.config.eval_resolution**2

    def get_param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {}
