"""Relative poses: what a view-conditioned prior reads in ``Cond(camera=...)``.

The relative pose of a target camera with respect to a reference camera is the target's
camera-to-world matrix expressed in the reference camera's coordinates,

    rel = inverse(reference_c2w) @ target_c2w,   R_rel = R_ref^T R_tgt,   p_rel = R_ref^T (p_tgt - p_ref),

both in the project's convention (:class:`diffcore.protocols.Camera`: OpenGL axes, the camera
looks along -z). It is all a view-conditioned prior needs to place the target camera against the
reference image: it does not depend on where the pair stands in the world (moving and turning
both cameras together leaves it unchanged), and the reference's own relative pose is the identity.
Zero-1-to-3's spherical offsets are a function of it for cameras that orbit the object
(:func:`diffcore.adapters.zero123.spherical_offsets`).

>>> import torch
>>> from diff_3d.cameras import orbit_cameras
>>> ref, tgt = orbit_cameras(torch.tensor([0.0]), 20.0, 2.5), orbit_cameras(torch.tensor([90.0]), 20.0, 2.5)
>>> bool(torch.allclose(relative_pose(ref.camera_to_worlds, ref.camera_to_worlds), torch.eye(4)[:3][None], atol=1e-6))
True
>>> rel = relative_pose(ref.camera_to_worlds, tgt.camera_to_worlds)
>>> bool(torch.allclose(compose(ref.camera_to_worlds, rel), tgt.camera_to_worlds, atol=1e-5))
True
"""

from __future__ import annotations

import torch

from diffcore.errors import ShapeError


def _poses(c2w, what: str) -> torch.Tensor:
    c2w = torch.as_tensor(c2w)
    if c2w.ndim != 3 or tuple(c2w.shape[1:]) not in ((3, 4), (4, 4)):
        raise ShapeError(f"{what} has shape {tuple(c2w.shape)}; expected camera-to-world matrices (N, 3, 4) or (N, 4, 4)")
    return c2w[:, :3, :4]


def relative_pose(reference_c2w, target_c2w) -> torch.Tensor:
    """``inverse(reference) @ target`` (N, 3, 4) for rigid camera-to-world matrices (a batch of 1 broadcasts)."""
    ref, tgt = _poses(reference_c2w, "the reference pose"), _poses(target_c2w, "the target pose")
    ref, tgt = torch.broadcast_tensors(ref, tgt) if ref.shape[0] == 1 or tgt.shape[0] == 1 else (ref, tgt)
    if ref.shape[0] != tgt.shape[0]:
        raise ShapeError(f"{ref.shape[0]} reference poses and {tgt.shape[0]} target poses; expected 1 or the same number")
    rot_t = ref[:, :, :3].transpose(1, 2)
    return torch.cat([rot_t @ tgt[:, :, :3], rot_t @ (tgt[:, :, 3:] - ref[:, :, 3:])], dim=-1)


def compose(reference_c2w, relative) -> torch.Tensor:
    """The target's camera-to-world matrices (N, 3, 4) from the reference's and the relative pose: ``reference @ rel``."""
    ref, rel = _poses(reference_c2w, "the reference pose"), _poses(relative, "the relative pose")
    return torch.cat([ref[:, :, :3] @ rel[:, :, :3], ref[:, :, :3] @ rel[:, :, 3:] + ref[:, :, 3:]], dim=-1)
