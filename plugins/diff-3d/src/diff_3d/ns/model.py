"""The nerfstudio model of diff-3d's methods: a representation rendered by rays, a distiller in ``get_loss_dict``.

The model holds a diff-3d representation (``nerfacto`` by default: nerfstudio's hash-grid field with
proposal sampling, torch implementation) and a diffcore distiller; the prior is built by spec through
diffcore's registry (``diffcore.devices.build_prior``) when the first loss is asked for, so loading a
run for the viewer or for export never loads it. ``get_loss_dict`` renders the batch's cameras,
gives the images in [-1, 1] to the distiller (``distillation_loss``, the stop-gradient form, so
nerfstudio's optimisers, gradient scaler and loss dict work unchanged), adds the representation's
own terms (the proposal networks' interlevel and distortion losses), and lets the distiller take its
own optimiser step (VSD's second model). The step and the run's length (for annealing) come from
the trainer through a training callback. Checkpoints hold the representation; VSD's second model
is not saved (a resumed VSD run starts it again from the prior).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps

import diffcore
from diff_3d.distillers.base import with_camera
from diff_3d.representations.volume import VolumeRepresentation
from diffcore.errors import DiffcoreError


@dataclass
class DistillModelConfig(ModelConfig):
    """A representation distilled from a diffcore prior (see the module docstring)."""

    _target: type = field(default_factory=lambda: DistillModel)
    prior: str = "zoo:patches"
    """The diffcore prior, by spec: zoo:digits, stable-diffusion:path=DIR, collage:..., analytic-scene, ..."""
    prompt: str | None = None
    """The text condition, for text-conditional priors (Stable Diffusion)."""
    label: str | None = None
    """The class label (index or name), for class-conditional priors (zoo:digits)."""
    distiller: str = "sds"
    """The diffcore distiller, by spec with options: sds:guidance_scale=50,weighting=uniform | sjc:draws=4 | vsd:lr=1e-3."""
    representation: str = "nerfacto"
    """The diff-3d representation, by spec: nerfacto | voxel:resolution=64 | triplane."""
    prior_device: str | None = None
    """Where the prior runs (default: the model's device)."""
    prior_dtype: str | None = None
    """The prior's precision: float32, float16 or bfloat16 (default float32)."""
    seed: int = 0
    """Seed of the distiller's generator (times, noise)."""
    enable_collider: bool = False
    """The representation clips rays to its own box."""


def _fail(exc: Exception):
    """nerfstudio's way with bad input (its data managers call sys.exit): one line, exit status 2."""
    return SystemExit(f"diff-3d: {exc}")


class DistillModel(Model):
    """See the module docstring."""

    config: DistillModelConfig

    def populate_modules(self):
        super().populate_modules()
        try:
            self.representation = diffcore.create("representation", self.config.representation)
            self.distiller = diffcore.create("distiller", self.config.distiller)
        except DiffcoreError as exc:
            raise _fail(exc) from exc
        if not isinstance(self.representation, VolumeRepresentation):
            raise _fail(
                DiffcoreError(f"representation {self.config.representation!r} does not render rays; use nerfacto, voxel or triplane")
            )
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.step = 0
        self.total_steps: int | None = None
        self._prior = None
        self._cond = None

    # -- the prior, built on first use ----------------------------------------------------
    def prior_and_condition(self):
        """The prior (built once, by spec) and the condition asked of it."""
        if self._prior is None:
            from diff_3d.conditioning import condition
            from diffcore.devices import build_prior

            try:
                prior = build_prior(self.config.prior, device=self.config.prior_device or str(self.device), dtype=self.config.prior_dtype)
                self._cond = condition(prior, prompt=self.config.prompt, label=self.config.label)
            except DiffcoreError as exc:
                raise _fail(exc) from exc
            self._prior = prior
        return self._prior, self._cond

    # -- nerfstudio's model interface -----------------------------------------------------
    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> list[TrainingCallback]:
        trainer = training_callback_attributes.trainer
        if trainer is not None:
            self.total_steps = int(trainer.config.max_num_iterations)

        def set_step(step: int) -> None:
            self.step = step

        return [TrainingCallback(where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], update_every_num_iters=1, func=set_step)]

    def get_param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        from diff_3d.representations.nerfacto import NerfactoField

        if isinstance(self.representation, NerfactoField):
            return self.representation.param_groups()
        return {"fields": list(self.representation.parameters())}

    def get_outputs(self, ray_bundle) -> dict:
        from diff_3d.representations.nerfacto import NerfactoField

        normals = not self.training
        if isinstance(self.representation, NerfactoField):
            out = self.representation.render_bundle(ray_bundle, normals=normals)
        else:
            shape = ray_bundle.origins.shape[:-1]
            out = self.representation.render_rays(ray_bundle.origins.reshape(-1, 3), ray_bundle.directions.reshape(-1, 3), normals=normals)
            out = {k: v.reshape(*shape, -1) for k, v in out.items()}
        out["signed_rgb"] = out["rgb"]
        out["rgb"] = (out["rgb"] + 1) / 2  # nerfstudio's viewer and writers show [0, 1]
        if "normals" in out:
            out["normals"] = (out["normals"] + 1) / 2
        return out

    def get_metrics_dict(self, outputs, batch) -> dict:
        return {}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, torch.Tensor]:
        prior, cond = self.prior_and_condition()
        camera = batch["camera"]
        n, h, w = len(camera), camera.height, camera.width
        images = outputs["signed_rgb"].reshape(n, h, w, -1).permute(0, 3, 1, 2)
        c = with_camera(prior, cond, camera)
        kwargs = {"step": self.step, "total_steps": self.total_steps, "generator": self.generator, "camera": camera}
        try:
            out = self.distiller.loss(prior, images, c, **kwargs)
        except DiffcoreError as exc:
            raise _fail(exc) from exc
        losses = {"distillation_loss": out.loss, **self.representation.regularisation(outputs)}
        if self.training:
            logs = self.distiller.update(prior, images.detach(), c, **kwargs)
            if metrics_dict is not None:
                metrics_dict.update({k: torch.as_tensor(v).float().mean() for k, v in {**out.logs, **logs}.items()})
        return losses

    def get_image_metrics_and_images(self, outputs, batch):
        images = {
            "img": outputs["rgb"],
            "accumulation": colormaps.apply_colormap(outputs["accumulation"]),
            "depth": colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"]),
        }
        if "normals" in outputs:
            images["normals"] = outputs["normals"]
        return {}, images
