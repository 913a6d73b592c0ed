"""The multi-view consistency score of a set of views of a known scene.

Views of one scene are consistent when a surface point has the same colour in every view that sees
it (the synthetic capture's scene is Lambertian, so its true views are). With the scene's exact
geometry this is measurable without any learned model: for each pair of neighbouring views
``(i, j)`` (consecutive in the capture's order, both ways), every pixel of view ``i`` whose centre
ray hits the scene (its whole pixel covered, so no silhouette mixing) is lifted to its 3-D point
(the exact depth), projected into view ``j`` and kept if view ``j`` sees that point (its own depth
there agrees within ``tolerance``) and the projection lands inside the image; the score is the mean
absolute colour difference between view ``i``'s pixel and view ``j``'s colour at the projection
(bilinear), on the [0, 1] scale, over all kept pixels of all pairs:

    consistency error = mean |I_i(p) - I_j(project_j(lift_i(p)))|   (lower is more consistent).

The capture's own views score near zero (resampling alone); independent per-view edits score
higher, the views of one edited 3-D scene lower.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diff_3d.cameras import camera_rays, index
from diffcore.protocols import Camera


def _project(points: torch.Tensor, camera: Camera) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel coordinates (u, v) and distance along the ray of world points (P, 3) in one camera."""
    c2w = camera.camera_to_worlds[0]
    local = (points - c2w[:, 3]) @ c2w[:, :3]  # R^T (p - o)
    z = -local[:, 2]
    u = camera.cx[0] + camera.fx[0] * local[:, 0] / z
    v = camera.cy[0] - camera.fy[0] * local[:, 1] / z
    return u, v, local.norm(dim=-1) * torch.sign(z)


def consistency_error(images: torch.Tensor, cameras: Camera, scene, *, tolerance: float = 0.02) -> float:
    """The score of ``images`` (N, C, H, W) in [-1, 1] seen by ``cameras`` of ``scene`` (see the module docstring)."""
    truth = scene.render_outputs(cameras)
    depth, covered = truth.depth[:, 0], truth.accumulation[:, 0] >= 1.0 - 1e-6
    origins, directions = camera_rays(cameras)
    n, h, w = depth.shape
    total, count = 0.0, 0
    for i in range(n):
        for j in ((i + 1) % n, (i - 1) % n):
            if j == i:
                continue
            keep = covered[i] & (depth[i] > 0)
            points = (origins[i] + depth[i][..., None] * directions[i])[keep]
            u, v, dist = _project(points, index(cameras, j))
            inside = (u >= 0.5) & (u <= w - 0.5) & (v >= 0.5) & (v <= h - 0.5) & (dist > 0)
            grid = torch.stack([u / w * 2 - 1, v / h * 2 - 1], dim=-1)[None, None]  # align_corners=False pixel centres
            seen_depth = F.grid_sample(depth[j][None, None], grid, mode="nearest", align_corners=False)[0, 0, 0]
            visible = inside & ((seen_depth - dist).abs() <= tolerance * dist.abs().clamp_min(1e-6))
            if not bool(visible.any()):
                continue
            colour_j = F.grid_sample(images[j : j + 1].float(), grid, mode="bilinear", align_corners=False)[0, :, 0].T
            colour_i = images[i].float().permute(1, 2, 0)[keep]
            diff = ((colour_i - colour_j).abs() / 2).mean(dim=-1)[visible]
            total, count = total + float(diff.sum()), count + int(diff.numel())
    return total / max(count, 1)
