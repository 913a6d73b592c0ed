"""gsplat's CUDA rasteriser (Ye et al. 2024, "gsplat: An Open-Source Library for Gaussian Splatting") behind
:func:`~diff_3d.representations.splatting.rasterize`.

gsplat takes world-to-camera matrices in OpenCV's axes (x right, y down, looking along +z) and
intrinsics ``K``; the kernel's cameras are OpenGL's (y up, looking along -z), so the camera's y and z
axes flip. Its rasteriser tiles the image and composites front to back with the same cut-offs
(alpha below 1/255 dropped, 0.99 cap, 0.3 px^2 low-pass), so the images match the torch
rasteriser's up to float rounding and tile-boundary effects (the test's tolerance). It needs CUDA.
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera


def rasterize_gsplat(means, scales, quats, opacities, colors, camera: Camera, *, background) -> dict[str, torch.Tensor]:
    """``rgb``, ``depth`` (gsplat's expected z-depth, not the distance along the ray) and ``accumulation``, as the torch rasteriser."""
    try:
        from gsplat import rasterization
    except ImportError as exc:
        raise ImportError("the gsplat backend needs gsplat (pip install gsplat; nerfstudio brings it)") from exc
    if means.device.type != "cuda":
        raise DiffcoreError("the gsplat backend runs on CUDA: move the Gaussians to a CUDA device, or use backend='torch'")
    n = len(camera)
    c2w = torch.eye(4, dtype=means.dtype, device=means.device).repeat(n, 1, 1)
    c2w[:, :3, :4] = camera.camera_to_worlds.to(means)
    c2w[:, :3, 1:3] = -c2w[:, :3, 1:3]  # OpenGL to OpenCV camera axes
    viewmats = torch.linalg.inv(c2w)
    ks = torch.zeros(n, 3, 3, dtype=means.dtype, device=means.device)
    ks[:, 0, 0], ks[:, 1, 1] = camera.fx[:, 0].to(means), camera.fy[:, 0].to(means)
    ks[:, 0, 2], ks[:, 1, 2], ks[:, 2, 2] = camera.cx[:, 0].to(means), camera.cy[:, 0].to(means), 1.0
    image, alpha, _ = rasterization(
        means,
        quats,
        scales,
        opacities,
        colors,
        viewmats,
        ks,
        camera.width,
        camera.height,
        render_mode="RGB+ED",
        packed=False,
    )
    acc = alpha.permute(0, 3, 1, 2)
    rgb = image[..., :-1].permute(0, 3, 1, 2) + (1 - acc) * background.to(colors)[None, :, None, None]  # over the background
    return {"rgb": rgb, "depth": image[..., -1:].permute(0, 3, 1, 2), "accumulation": acc}


__all__ = ["rasterize_gsplat"]
