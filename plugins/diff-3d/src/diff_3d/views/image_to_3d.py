"""One reference view to a 3-D representation: score distillation through a view-conditioned prior.

Zero-1-to-3 (Liu et al. 2023, sec. 3.5) lifts a single image to 3-D by Score Jacobian Chaining
with its view-conditioned model: every render from a random camera is scored by the prior
conditioned on the reference view and on that camera's pose *relative to the reference camera*,
and the reference camera's own render is pulled to the reference image. Here:

- :class:`FromReference` fixes the reference of a view-conditioned prior (the contract of
  :mod:`diff_3d.views.prior`: ``zoo:views``, ``zero123:path=DIR``): it takes the absolute
  camera-to-world matrices diff-3d's distillers put in ``cond.camera`` and asks the inner prior for
  ``Cond(image=reference, camera=relative_pose(reference camera, camera))``, with classifier-free
  guidance of strength ``guidance_scale`` done inside (the distillers see a camera-only prior, and
  Zero-1-to-3 guides with its own null reference);
- :class:`ReferenceLoss` adds ``weight * mean((render(reference camera) - reference)^2)`` to any
  distiller's loss (Zero-1-to-3's and Magic123's reconstruction term on the input view);
- :func:`image_to_3d` runs :func:`diff_3d.distill.distill` with both (SDS by default).

A prior that is not view-conditioned is refused in one line (:func:`~diff_3d.views.prior.check_view_prior`).
"""

from __future__ import annotations

import torch

from diff_3d.views.poses import _poses, relative_pose
from diff_3d.views.prior import check_view_prior
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.priors.wrapper import PriorWrapper
from diffcore.protocols import Camera, Cond, Distillation, DistillerBase, check_cond


class FromReference(PriorWrapper):
    """A view-conditioned ``prior`` seen from absolute cameras, its reference fixed (see the module docstring).

    Args:
        prior: a view-conditioned prior; reference: the reference view (1, C, H, W) in [-1, 1]
        (the image the prior's ``cond.image`` expects); reference_c2w: its camera-to-world matrix
        (1, 3, 4) or (1, 4, 4); guidance_scale: classifier-free guidance (1: none); name: the spec, for messages.
    """

    accepts = frozenset({"camera"})
    null_cond = None
    changes_distribution = True

    def __init__(self, prior, reference: torch.Tensor, reference_c2w, *, guidance_scale: float = 1.0, name: str = "the prior"):
        check_view_prior(prior, name)
        super().__init__(prior)
        reference = torch.as_tensor(reference, dtype=torch.float32)
        if reference.ndim == 3:
            reference = reference[None]
        if reference.ndim != 4 or reference.shape[0] != 1:
            raise ShapeError(f"the reference has shape {tuple(reference.shape)}; expected one view (1, C, H, W) in [-1, 1]")
        if not bool(torch.isfinite(reference).all()) or float(reference.abs().max()) > 1 + 1e-6:
            raise DiffcoreError("the reference view must be finite and in [-1, 1]")
        self.reference = reference
        self.reference_c2w = _poses(reference_c2w, "the reference camera")[:1].float()
        self.guidance_scale = float(guidance_scale)

    def condition(self, camera_to_worlds) -> Cond:
        """The inner prior's condition for renders from ``camera_to_worlds`` (N, 3, 4)."""
        c2w = _poses(camera_to_worlds, "cond.camera").detach().float().cpu()
        return Cond(image=self.reference, camera=relative_pose(self.reference_c2w, c2w))

    def predict(self, x_t, t, cond: Cond | None = None):
        check_cond("image-to-3d", self.accepts, cond)
        if cond is None or cond.camera is None:
            raise DiffcoreError("the reference's prior needs the camera of each render: cond=Cond(camera=camera_to_worlds (N, 3, 4))")
        inner = self.condition(cond.camera)
        n = x_t.shape[0]
        inner = Cond(image=inner.image.to(x_t.device).expand(n, -1, -1, -1), camera=inner.camera.to(x_t.device).expand(n, -1, -1))
        if self.guidance_scale == 1.0:
            return self.prior.predict(x_t, t, inner)
        from diffcore.priors import Guided

        return Guided(self.prior, self.guidance_scale, inner).predict(x_t, t)


class ReferenceLoss(DistillerBase):
    """``distiller``'s loss plus ``weight * mean((render(reference camera) - reference)^2)`` (see the module docstring)."""

    def __init__(self, distiller, representation, reference: torch.Tensor, reference_camera: Camera, *, weight: float = 100.0):
        self.distiller, self.representation = distiller, representation
        self.reference, self.reference_camera, self.weight = reference, reference_camera, float(weight)

    def loss(self, prior, images, cond, *, step, total_steps, generator, camera=None) -> Distillation:
        from diff_3d.distill import render_for_training

        out = self.distiller.loss(prior, images, cond, step=step, total_steps=total_steps, generator=generator, camera=camera)
        if self.weight == 0:
            return out
        render, _ = render_for_training(self.representation, self.reference_camera)
        reconstruction = (render.float() - self.reference.to(render)).pow(2).mean()
        return Distillation(out.loss + self.weight * reconstruction, {**out.logs, "reference_mse": reconstruction.detach()})

    def parameters(self):
        return self.distiller.parameters()

    def update(self, prior, images, cond, *, step, total_steps, generator, camera=None) -> dict:
        return self.distiller.update(prior, images, cond, step=step, total_steps=total_steps, generator=generator, camera=camera)


def image_to_3d(
    prior,
    reference: torch.Tensor,
    reference_camera: Camera,
    representation,
    *,
    steps: int,
    generator: torch.Generator,
    distiller=None,
    cameras=None,
    guidance_scale: float = 1.0,
    reference_weight: float = 100.0,
    lr: float = 0.05,
    evaluate=None,
    eval_every: int = 100,
    progress: bool | str = False,
    name: str = "the prior",
):
    """Distil ``representation`` from one ``reference`` view (1, C, H, W) seen by ``reference_camera``; returns the distill record.

    ``distiller`` defaults to SDS (uniform weighting); ``cameras`` (a :class:`~diff_3d.cameras.CameraSampler`)
    to orbits at the reference camera's distance from the origin and its image size.
    """
    from diff_3d.cameras import CameraSampler
    from diff_3d.distill import distill
    from diff_3d.distillers import SDS

    wrapped = FromReference(prior, reference, reference_camera.camera_to_worlds, guidance_scale=guidance_scale, name=name)
    if cameras is None:
        radius = float(reference_camera.camera_to_worlds[0, :3, 3].norm())
        cameras = CameraSampler(size=reference_camera.width, radius=(radius, radius), fov=_fov(reference_camera))
    objective = ReferenceLoss(
        distiller if distiller is not None else SDS(weighting="uniform"),
        representation,
        wrapped.reference,
        reference_camera,
        weight=reference_weight,
    )
    return distill(
        wrapped,
        representation,
        objective,
        steps=steps,
        generator=generator,
        cameras=cameras,
        lr=lr,
        evaluate=evaluate,
        eval_every=eval_every,
        progress=progress,
    )


def _fov(camera: Camera) -> tuple[float, float]:
    import math

    fov = math.degrees(2 * math.atan(camera.width / 2 / float(camera.fx[0])))
    return (fov, fov)
