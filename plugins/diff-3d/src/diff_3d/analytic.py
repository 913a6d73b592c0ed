"""An exact view-conditioned prior of a known scene: the oracle every distiller is checked against.

Given a camera ``c``, the clean distribution is a narrow Gaussian around the scene's render from
``c``: ``p(x0 | c) = N(m(c), s^2 I)`` with ``m(c)`` = :meth:`BlobScene.render_outputs`. Its
denoiser is exact at every t (the Gaussian case of :class:`diffcore.priors.GaussianPrior`): with
``x_t = alpha x0 + sigma eps`` and ``v = alpha^2 s^2 + sigma^2``,

``E[x0 | x_t, c] = m + alpha s^2 / v (x_t - alpha m)`` and ``E[eps | x_t, c] = sigma / v (x_t - alpha m)``.

A distiller that recovers the scene from this prior recovers what a perfect view-conditioned
model of it would teach. ``Cond(camera=...)`` holds camera-to-world matrices (N, 3, 4) or (N, 4, 4)
(:class:`diffcore.protocols.Camera` convention); the intrinsics are the prior's own: square
images of ``size`` pixels with a field of view of ``fov`` degrees. There is no unconditional model
(``null_cond`` is None): a camera is required.

>>> import torch
>>> from diff_3d.cameras import orbit_cameras
>>> prior = SceneViewPrior(size=8)
>>> cam = orbit_cameras(torch.tensor([0.0]), 20.0, 2.5, fov=prior.fov, size=8)
>>> m = prior.mean(cam.camera_to_worlds)
>>> pred = prior.predict(0.3 * m, 0.0, Cond(camera=cam.camera_to_worlds))  # t = 0: x0 is x_t
>>> bool(torch.allclose(pred.x0, 0.3 * m))
True
"""

from __future__ import annotations

import torch

from diff_3d.cameras import focal_from_fov
from diff_3d.scene import BlobScene
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import Camera, Cond, Prediction, PriorBase, check_cond, time_tensor


def _default_schedule():
    from diffcore.schedules import DiscreteSchedule

    return DiscreteSchedule.linear(1000)


class SceneViewPrior(PriorBase):
    """``p(x0 | camera) = N(scene render, std^2 I)``, exact (see the module docstring).

    Args:
        scene: a :class:`BlobScene` (default :meth:`BlobScene.default`).
        size: image size in pixels; fov: field of view in degrees; std: the Gaussian's width.
        schedule: the forward process (default DDPM linear, 1000 steps).
    """

    accepts = frozenset({"camera"})
    null_cond = None

    def __init__(self, scene: BlobScene | None = None, *, size: int = 32, fov: float = 50.0, std: float = 0.02, schedule=None):
        if not std > 0:
            raise DiffcoreError(f"std must be positive, got {std}")
        self.scene = scene if scene is not None else BlobScene.default()
        self.size, self.fov, self.std = int(size), float(fov), float(std)
        self.sample_shape = (3, self.size, self.size)
        self.schedule = schedule if schedule is not None else _default_schedule()

    def camera(self, camera_to_worlds: torch.Tensor) -> Camera:
        """The prior's cameras at these poses (its own intrinsics)."""
        c2w = torch.as_tensor(camera_to_worlds, dtype=torch.float32)
        if c2w.ndim != 3 or tuple(c2w.shape[1:]) not in ((3, 4), (4, 4)):
            raise ShapeError(f"cond.camera has shape {tuple(c2w.shape)}; expected camera-to-world matrices (N, 3, 4) or (N, 4, 4)")
        focal = focal_from_fov(self.fov, self.size)
        half = self.size / 2
        return Camera(c2w, focal, focal, half, half, self.size, self.size)

    def mean(self, camera_to_worlds: torch.Tensor) -> torch.Tensor:
        """The scene's renders (N, 3, size, size) from these poses: the Gaussian's means."""
        return self.scene.render(self.camera(camera_to_worlds))

    def predict(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> Prediction:
        check_cond("analytic-scene", self.accepts, cond)
        if cond is None or cond.camera is None:
            raise DiffcoreError("the analytic-scene prior is view-conditioned: pass cond=Cond(camera=camera_to_worlds (N, 3, 4))")
        if tuple(x_t.shape[1:]) != self.sample_shape:
            raise ShapeError(f"x_t has shape {tuple(x_t.shape)}; expected (N, {', '.join(map(str, self.sample_shape))})")
        n = x_t.shape[0]
        c2w = torch.as_tensor(cond.camera).detach().cpu()  # the prior computes on the CPU (its device), whatever the inputs'
        if c2w.shape[0] == 1 and n > 1:
            c2w = c2w.expand(n, *c2w.shape[1:])
        if c2w.shape[0] != n:
            raise ShapeError(f"cond.camera has {c2w.shape[0]} poses; expected 1 or {n} to match x_t")
        m = self.mean(c2w).to(torch.float64)
        tt = time_tensor(t, x_t).detach().to(torch.float64).cpu()
        alpha = self.schedule.alpha(tt).reshape(-1, 1, 1, 1)
        sigma = self.schedule.sigma(tt).reshape(-1, 1, 1, 1)
        var = alpha**2 * self.std**2 + sigma**2
        resid = x_t.to(torch.float64).cpu() - alpha * m
        x0 = m + alpha * self.std**2 / var * resid
        eps = sigma / var * resid
        return Prediction(x0=x0.to(x_t), eps=eps.to(x_t))
