"""The nerfstudio method ``diff-in2n``: Instruct-NeRF2NeRF's iterative dataset update with any diffcore prior.

A diff-3d representation (``nerfacto`` by default: nerfstudio's hash-grid field, torch
implementation) trains on a capture (``--data`` a folder in nerfstudio's ``transforms.json``
layout, :mod:`diff_3d.editing.capture`, read by nerfstudio's data parser with the poses as they
are) by the photometric mean squared error of random rays; every ``edit_every`` steps from ``edit_from`` on, the
pipeline renders one training view (a shuffled round over the views) from the current field, edits
it with the prior (:func:`diff_3d.editing.edit.sdedit` under the condition asked: ``label``,
``prompt``) and writes it back into the data manager's cached images, which the next steps train
on (Haque et al. 2023, sec. 4)::

    ns-train diff-in2n --data capture/ --pipeline.prior zoo:textures --pipeline.label brick --machine.device-type cpu

A capture folder nerfstudio cannot read, or a prior or condition that does not fit, stops the
command in one line while the command line is read, before nerfstudio writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from diff_3d.ns.model import DistillModel, DistillModelConfig, _fail
from diffcore.errors import DiffcoreError


@dataclass
class In2NModelConfig(DistillModelConfig):
    """A diff-3d representation fitted to a capture's rays (photometric MSE plus the representation's own terms)."""

    _target: type = field(default_factory=lambda: In2NModel)


class In2NModel(DistillModel):
    """:class:`~diff_3d.ns.model.DistillModel`'s representation and rendering, trained on the capture's pixels."""

    def get_metrics_dict(self, outputs, batch) -> dict:
        mse = (outputs["rgb"] - batch["image"].to(outputs["rgb"])).pow(2).mean()
        return {"psnr": -10 * torch.log10(mse.detach().clamp_min(1e-10))}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, torch.Tensor]:
        rgb = outputs["rgb"]
        return {"rgb_loss": (rgb - batch["image"].to(rgb)).pow(2).mean(), **self.representation.regularisation(outputs)}


@dataclass
class In2NPipelineConfig(VanillaPipelineConfig):
    """nerfacto on a capture whose views are edited in turn by a diffcore prior (see the module docstring)."""

    _target: type = field(default_factory=lambda: In2NPipeline)
    prior: str = "zoo:textures"
    """The editing prior, by spec: zoo:textures, zoo:digits, stable-diffusion:path=DIR, ..."""
    label: str | None = None
    """The class label (index or name), for class-conditional priors."""
    prompt: str | None = None
    """The text condition, for text-conditional priors."""
    strength: float = 0.6
    """SDEdit's noise level in (0, 1]: how much of each view an edit may change."""
    edit_steps: int = 20
    """DDIM steps of one edit (over the whole schedule; those below ``strength`` run)."""
    guidance_scale: float = 1.0
    """Classifier-free guidance of the edits (1: none)."""
    edit_every: int = 10
    """Training steps between two view edits."""
    edit_from: int = 0
    """The first step that edits (before it, the field fits the capture)."""
    seed: int = 0
    """Seed of the edits' noise and of the order of the views."""

    def check(self, data) -> None:
        """One line (``SystemExit``) unless ``data`` is a capture nerfstudio can read and the prior takes the condition."""
        from diff_3d.editing.capture import read_capture

        try:
            read_capture(data)
            self.editor("cpu")
        except DiffcoreError as exc:
            raise _fail(exc) from None

    def editor(self, device):
        """The prior (by spec) and its condition."""
        from diff_3d.conditioning import condition
        from diffcore.devices import build_prior

        prior = build_prior(self.prior, device=str(device))
        return prior, condition(prior, prompt=self.prompt, label=self.label)


class In2NPipeline(VanillaPipeline):
    """:class:`VanillaPipeline` whose ``get_train_loss_dict`` edits one cached training image every ``edit_every`` steps."""

    config: In2NPipelineConfig

    def __init__(self, config: In2NPipelineConfig, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self._editor = None
        self._order: list[int] = []
        self.generator = torch.Generator().manual_seed(config.seed)
        self.edited: list[int] = []

    def images(self) -> torch.Tensor:
        """The cached training images (N, H, W, 3) in [0, 1] that the pixel sampler draws from (edited in place)."""
        loader = self.datamanager.train_image_dataloader
        if loader.cached_collated_batch is None:
            raise DiffcoreError("diff-in2n needs every training image cached (train_num_images_to_sample_from -1)")
        return loader.cached_collated_batch["image"]

    @torch.no_grad()
    def edit_view(self, step: int) -> int:
        """Render the next view of the round, edit it, write it back; returns its index."""
        from diff_3d.editing.edit import sdedit

        if self._editor is None:
            try:
                self._editor = self.config.editor(self.device)
            except DiffcoreError as exc:
                raise _fail(exc) from exc
        prior, cond = self._editor
        images = self.images()
        if not self._order:
            self._order = torch.randperm(images.shape[0], generator=self.generator).tolist()
        i = self._order.pop(0)
        camera = self.datamanager.train_dataset.cameras[i : i + 1].to(self.device)
        was = self.model.training
        self.model.eval()
        try:
            render = self.model.get_outputs_for_camera(camera)["rgb"]
        finally:
            self.model.train(was)
        view = render.permute(2, 0, 1)[None].float() * 2 - 1
        edited = sdedit(
            prior,
            view.cpu(),
            cond=cond,
            strength=self.config.strength,
            steps=self.config.edit_steps,
            generator=self.generator,
            guidance=self.config.guidance_scale,
        )
        images[i] = ((edited[0].permute(1, 2, 0) + 1) / 2).to(images)
        self.edited.append(i)
        return i

    def get_train_loss_dict(self, step: int):
        if step >= self.config.edit_from and (step - self.config.edit_from) % self.config.edit_every == 0:
            self.edit_view(step)
        return super().get_train_loss_dict(step)


@dataclass
class In2NTrainerConfig(TrainerConfig):
    """nerfstudio's trainer config, checking the capture and the prior when the command line gives them."""

    def __post_init__(self):
        data = self.data if self.data is not None else getattr(self.pipeline.datamanager, "data", None)
        if data is not None and isinstance(self.pipeline, In2NPipelineConfig):  # before nerfstudio writes anything
            self.pipeline.check(data)


def method() -> MethodSpecification:
    """``diff-in2n``: a representation (nerfacto's field, torch implementation) on a capture, edited by a prior as it trains."""
    config = In2NTrainerConfig(
        method_name="diff-in2n",
        experiment_name="",
        steps_per_eval_batch=500,
        steps_per_eval_image=500,
        steps_per_save=1000,
        max_num_iterations=3000,
        mixed_precision=False,
        pipeline=In2NPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                dataparser=NerfstudioDataParserConfig(orientation_method="none", center_method="none", auto_scale_poses=False),
                train_num_rays_per_batch=1024,
                eval_num_rays_per_batch=1024,
            ),
            model=In2NModelConfig(eval_num_rays_per_chunk=1 << 13),
        ),
        optimizers={
            "proposal_networks": {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": None},
            "fields": {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": None},
        },
        viewer=ViewerConfig(),
        vis="viewer",
    )
    return MethodSpecification(
        config=config, description="diff-3d: Instruct-NeRF2NeRF's iterative dataset update with any diffcore prior with a condition"
    )


diff_in2n = method()
