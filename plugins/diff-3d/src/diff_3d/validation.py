"""The recovery check: distil the exact view-conditioned prior of a known scene and measure PSNR on held-out views.

The prior (:class:`~diff_3d.analytic.SceneViewPrior`) knows the scene's render from every camera, so
a distiller that works turns a blank representation into the scene. :func:`recover` runs one
distiller on one representation with the settings below (the ones of the docs' curves, the tour and
the tests) and evaluates the PSNR on eight held-out views every ``eval_every`` steps.

Cameras: random orbits at radius 2.2-2.8, elevation -10..45 degrees, all azimuths, and the prior's
field of view (50 degrees) at ``size`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import diffcore
from diff_3d.cameras import CameraSampler
from diff_3d.distill import DistillRecord, distill
from diff_3d.metrics import view_psnr

FOV = 50.0
#: Distiller options of the check (VSD's second model learns faster than its default 1e-3 on this prior).
DISTILLER_OPTIONS = {"sds": {}, "sjc": {}, "vsd": {"lr": 3e-3}}
#: Adam's learning rate per representation.
LEARNING_RATES = {"voxel": 0.05, "triplane": 0.02, "nerfacto": 0.01}


@dataclass
class Recovery:
    """A finished check: the representation, the prior, the cameras, the record and the last PSNR."""

    representation: object
    prior: object
    cameras: CameraSampler
    record: DistillRecord

    @property
    def psnr(self) -> float:
        return self.record.curve[-1][1]["psnr"]


def _evaluate(rep, reference, cameras) -> dict[str, float]:
    rep.eval()  # no sampling jitter
    try:
        return {"psnr": view_psnr(rep, reference, cameras)}
    finally:
        rep.train()


def recover(
    distiller: str = "sds",
    representation: str = "voxel",
    *,
    steps: int = 2000,
    size: int = 32,
    seed: int = 0,
    eval_every: int = 100,
    views: int = 8,
    lr: float | None = None,
    representation_options: dict | None = None,
    distiller_options: dict | None = None,
    progress: bool | str = False,
) -> Recovery:
    """Distil ``analytic-scene`` into ``representation`` with ``distiller`` (names in the registry) and measure it."""
    prior = diffcore.create("prior", "analytic-scene", size=size, fov=FOV)
    cameras = CameraSampler(size=size, fov=(FOV, FOV))
    held_out = cameras.held_out(views)
    reference = prior.scene.render(held_out)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # nerfacto's sampler jitter draws from torch's global generator
        rep = diffcore.create("representation", representation, **(representation_options or {}))
        objective = diffcore.create("distiller", distiller, **{**DISTILLER_OPTIONS.get(distiller, {}), **(distiller_options or {})})
        record = distill(
            prior,
            rep,
            objective,
            steps=steps,
            lr=lr if lr is not None else LEARNING_RATES.get(representation, 0.01),
            cameras=cameras,
            generator=torch.Generator().manual_seed(seed),
            evaluate=lambda step: _evaluate(rep, reference, held_out),
            eval_every=eval_every,
            progress=progress,
        )
    return Recovery(rep, prior, cameras, record)
