"""The nerfstudio method ``diff-zero123``: one reference image to 3-D through a view-conditioned prior.

Zero-1-to-3's image-to-3-D (Liu et al. 2023, sec. 3.5) as a nerfstudio method: the field is
rendered from random orbit cameras and scored by score distillation through the view-conditioned
prior (``zoo:views`` by default, or ``zero123:path=DIR``) conditioned on the reference image and
each camera's pose relative to the reference camera
(:class:`diff_3d.views.image_to_3d.FromReference`), and the reference camera's render is pulled to
the image (``reference_weight`` times its mean squared error)::

    ns-train diff-zero123 --pipeline.model.image photo.png --pipeline.model.elevation 20 --machine.device-type cpu

The image is read with Pillow (an alpha channel is composited on white, the background
Zero-1-to-3's renders have) and resized to the prior's image size. The reference camera sits at
``azimuth``, ``elevation`` (degrees) and ``radius`` on the orbit the data manager samples, with its
field of view. A prior without camera conditioning, or an image that cannot be read, stops the
command in one line before nerfstudio writes anything (the check runs when the command line is
parsed, where ``image`` is given).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from diff_3d.ns.datamanager import DistillCamerasDataManagerConfig
from diff_3d.ns.model import DistillModel, DistillModelConfig, _fail
from diffcore.errors import DiffcoreError


def read_reference(path, shape: tuple[int, int, int]) -> torch.Tensor:
    """The image at ``path`` as a reference view (1, C, H, W) in [-1, 1] of ``shape`` (alpha composited on white)."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                white = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(white, image)
            image = image.convert("RGB" if c == 3 else "L").resize((w, h), Image.Resampling.BICUBIC)
    except (OSError, UnidentifiedImageError) as exc:
        raise DiffcoreError(f"cannot read the reference image {path}: {exc}") from None
    pixels = torch.tensor(list(image.getdata()), dtype=torch.float32).reshape(h, w, -1).permute(2, 0, 1)
    return (pixels / 127.5 - 1)[None]


@dataclass
class Zero123ModelConfig(DistillModelConfig):
    """One reference image distilled into a field through a view-conditioned prior (see the module docstring)."""

    _target: type = field(default_factory=lambda: Zero123Model)
    prior: str = "zoo:views"
    """The view-conditioned prior, by spec: zoo:views | zero123:path=DIR."""
    image: Path | None = None
    """The reference image (PNG, JPEG...)."""
    azimuth: float = 0.0
    """The reference camera's azimuth in degrees."""
    elevation: float = 20.0
    """The reference camera's elevation in degrees."""
    radius: float = 2.2
    """The reference camera's distance to the centre."""
    fov: float = 50.0
    """The reference camera's field of view in degrees."""
    guidance_scale: float = 1.0
    """Classifier-free guidance of the view prior (its null reference as the unconditional model)."""
    reference_weight: float = 100.0
    """Weight of the reference view's mean squared error."""
    distiller: str = "sds:weighting=uniform"

    def __post_init__(self):
        if self.image is not None:  # given on the command line: check before nerfstudio writes its config
            try:
                self.reference_prior("cpu")
            except DiffcoreError as exc:
                raise _fail(exc) from None

    def reference_prior(self, device):
        """The prior with its reference fixed (:class:`~diff_3d.views.image_to_3d.FromReference`) and the reference camera."""
        from diff_3d.cameras import orbit_cameras
        from diff_3d.views.image_to_3d import FromReference
        from diff_3d.views.prior import check_view_prior
        from diffcore.devices import build_prior

        if self.image is None:
            raise DiffcoreError("diff-zero123 needs the reference image: --pipeline.model.image PATH")
        prior = build_prior(self.prior, device=self.prior_device or str(device), dtype=self.prior_dtype)
        check_view_prior(prior, self.prior)
        reference = read_reference(self.image, tuple(prior.image_shape))
        camera = orbit_cameras(torch.tensor([self.azimuth]), self.elevation, self.radius, fov=self.fov, size=reference.shape[-1])
        wrapped = FromReference(prior, reference, camera.camera_to_worlds, guidance_scale=self.guidance_scale, name=self.prior)
        return wrapped, camera


class Zero123Model(DistillModel):
    """:class:`~diff_3d.ns.model.DistillModel` with the reference's prior and the reference view's reconstruction."""

    config: Zero123ModelConfig

    def populate_modules(self):
        super().populate_modules()
        self._reference_camera = None

    def prior_and_condition(self):
        if self._prior is None:
            try:
                self._prior, self._reference_camera = self.config.reference_prior(self.device)
            except DiffcoreError as exc:
                raise _fail(exc) from exc
            self._cond = None
        return self._prior, self._cond

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, torch.Tensor]:
        from diff_3d.cameras import to_device
        from diff_3d.distill import render_for_training

        losses = super().get_loss_dict(outputs, batch, metrics_dict)
        if self.config.reference_weight > 0:
            render, _ = render_for_training(self.representation, to_device(self._reference_camera, self.device))
            reference = self._prior.reference.to(render)
            losses["reference_loss"] = self.config.reference_weight * (render - reference).pow(2).mean()
        return losses


def method() -> MethodSpecification:
    """``diff-zero123``: its trainer, pipeline (orbits the size of zoo:views' training views), model and optimisers."""
    config = TrainerConfig(
        method_name="diff-zero123",
        experiment_name="",
        steps_per_eval_batch=500,
        steps_per_eval_image=250,
        steps_per_save=500,
        max_num_iterations=3000,
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(
            datamanager=DistillCamerasDataManagerConfig(
                resolution=32, eval_resolution=32, radius=(2.2, 2.2), elevation=(0.0, 40.0), fov=(50.0, 50.0)
            ),
            model=Zero123ModelConfig(eval_num_rays_per_chunk=1 << 14),
        ),
        optimizers={
            "proposal_networks": {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": None},
            "fields": {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": None},
        },
        viewer=ViewerConfig(),
        vis="viewer",
    )
    return MethodSpecification(
        config=config,
        description="diff-3d: one reference image to 3-D through a view-conditioned prior (Zero-1-to-3; zoo:views by default)",
    )


diff_zero123 = method()
