"""Training and evaluation pairs of ``zoo:views``: two views of one procedural scene and their relative pose.

Every pair comes from a fresh scene (:func:`diff_3d.views.scenes.random_scene`) seen by two
independent random cameras of :data:`CAMERAS` (the target may be anywhere on the orbit, as in
Zero-1-to-3's training on Objaverse renders); the draws come from one generator in a fixed order
(the scene, then the two cameras), so a seed fixes the pairs. Training seeds and held-out seeds
are kept apart by :func:`pairs`' ``split``.

>>> import torch
>>> batch = pairs(4, torch.Generator().manual_seed(0))
>>> batch.reference.shape, batch.relative.shape
(torch.Size([4, 3, 32, 32]), torch.Size([4, 3, 4]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diff_3d.cameras import CameraSampler, index
from diff_3d.views.poses import relative_pose
from diff_3d.views.scenes import PrimitiveScene, random_scene
from diffcore.protocols import Camera

#: The cameras of zoo:views' training and measurements: an orbit at radius 2.0-2.4 at elevations 0-40 degrees, 50-degree field of view.
CAMERAS = CameraSampler(size=32, radius=(2.0, 2.4), elevation=(0.0, 40.0), azimuth=(-180.0, 180.0), fov=(50.0, 50.0))
#: The held-out split's generators start at this offset from the seed.
HELD_OUT = 1_000_003


@dataclass(frozen=True, eq=False)
class ViewPairs:
    """``reference`` and ``target`` views (N, 3, H, W), ``relative`` poses (N, 3, 4), the ``scenes`` and both ``cameras``."""

    reference: torch.Tensor
    target: torch.Tensor
    relative: torch.Tensor
    scenes: list[PrimitiveScene]
    reference_cameras: Camera
    target_cameras: Camera


def pairs(n: int, generator: torch.Generator, *, cameras: CameraSampler = CAMERAS, most: int = 3) -> ViewPairs:
    """``n`` pairs of views of fresh scenes drawn from ``generator`` (see the module docstring)."""
    scenes, refs, tgts, ref_cams, tgt_cams = [], [], [], [], []
    for _ in range(n):
        scene = random_scene(generator, most=most)
        both = cameras.sample(2, generator)
        views = scene.render(both)
        scenes.append(scene)
        refs.append(views[:1])
        tgts.append(views[1:])
        ref_cams.append(index(both, 0))
        tgt_cams.append(index(both, 1))
    ref_c2w = torch.cat([c.camera_to_worlds for c in ref_cams])
    tgt_c2w = torch.cat([c.camera_to_worlds for c in tgt_cams])

    def batch(cams: list[Camera]) -> Camera:
        return Camera(
            torch.cat([c.camera_to_worlds for c in cams]),
            torch.cat([c.fx for c in cams]),
            torch.cat([c.fy for c in cams]),
            torch.cat([c.cx for c in cams]),
            torch.cat([c.cy for c in cams]),
            cams[0].width,
            cams[0].height,
        )

    return ViewPairs(torch.cat(refs), torch.cat(tgts), relative_pose(ref_c2w, tgt_c2w), scenes, batch(ref_cams), batch(tgt_cams))


def split_generator(seed: int, split: str) -> torch.Generator:
    """The generator of a split: ``train`` from ``seed``, ``held-out`` from ``seed + HELD_OUT``."""
    return torch.Generator().manual_seed(seed + (HELD_OUT if split == "held-out" else 0))
