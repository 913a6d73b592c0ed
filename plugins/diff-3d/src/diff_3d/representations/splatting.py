"""A differentiable rasteriser of 3-D Gaussians in plain torch (EWA splatting as 3D Gaussian Splatting does it).

Kerbl et al. (2023), "3D Gaussian Splatting for Real-Time Radiance Field Rendering", sec. 4 and 6,
after Zwicker et al. (2001), "EWA Volume Splatting": a Gaussian of mean ``mu`` and covariance
``Sigma = R S S^T R^T`` (rotation ``R`` from a unit quaternion, scales ``S``) seen by a camera with
world-to-camera rotation ``W`` projects to the 2-D Gaussian of mean ``pi(W mu + t)`` and covariance
``J W Sigma W^T J^T`` (``J`` the Jacobian of the perspective projection at the mean), widened by
0.3 px^2 on the diagonal (the anti-aliasing low-pass of the reference implementation). Each pixel
composites the Gaussians front to back by depth, ``alpha_i = o_i exp(-d^T Sigma'^-1 d / 2)``
(capped at 0.99, dropped below 1/255), ``C = sum_i c_i alpha_i prod_{j<i} (1 - alpha_j)`` over the
background.

Here every pixel sees every Gaussian in front of the camera (dense (pixels x Gaussians) tensors,
no tiles): exact, differentiable by autograd, on any device, and fast enough at 32x32 to 64x64 with
a few thousand Gaussians. gsplat's CUDA rasteriser (Ye et al. 2024) computes the same images where
it is installed and CUDA exists (:func:`rasterize` with ``backend="gsplat"``).

Cameras are the kernel's :class:`~diffcore.protocols.Camera` (OpenGL axes: the camera looks along
-z; the centre of pixel (row v, column u) is at ``(u + 0.5, v + 0.5)``).

>>> import torch
>>> from diff_3d.cameras import orbit_cameras
>>> cam = orbit_cameras(torch.tensor([0.0]), 0.0, 3.0, size=9)
>>> out = rasterize(torch.zeros(1, 3), torch.full((1, 3), 0.1), torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([0.9]),
...                 torch.tensor([[1.0, -1.0, -1.0]]), cam, background=torch.ones(3))
>>> out["rgb"][0, :, 4, 4]  # the centre pixel: mostly the Gaussian's red, a little white behind it
tensor([ 1.0000, -0.8000, -0.8000])
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera

NEAR = 0.01
LOW_PASS = 0.3
ALPHA_MIN, ALPHA_MAX = 1.0 / 255.0, 0.99
BACKENDS = ("torch", "gsplat")


def quaternion_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (G, 3, 3) of quaternions (G, 4) ``(w, x, y, z)``, normalised first."""
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)).unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def covariances(scales: torch.Tensor, quats: torch.Tensor) -> torch.Tensor:
    """World covariances (G, 3, 3) ``R S S^T R^T`` of scales (G, 3) and quaternions (G, 4)."""
    m = quaternion_matrix(quats) * scales[:, None, :]
    return m @ m.transpose(1, 2)


def project(means: torch.Tensor, cov: torch.Tensor, c2w: torch.Tensor, fx, fy, cx, cy):
    """One camera: pixel means (G, 2), 2-D covariances (G, 2, 2), depths (G,) and distances (G,) of the Gaussians."""
    rotation, origin = c2w[:, :3], c2w[:, 3]
    w = rotation.T  # world to camera
    p = (means - origin) @ w.T  # camera coordinates, looking along -z
    depth = -p[:, 2]
    d = depth.clamp_min(NEAR)
    uv = torch.stack([fx * p[:, 0] / d + cx, -fy * p[:, 1] / d + cy], dim=-1)
    zeros = torch.zeros_like(d)
    jac = torch.stack(
        [torch.stack([fx / d, zeros, fx * p[:, 0] / d**2], -1), torch.stack([zeros, -fy / d, -fy * p[:, 1] / d**2], -1)], -2
    )  # (G, 2, 3)
    t = jac @ w
    cov2 = t @ cov @ t.transpose(1, 2) + LOW_PASS * torch.eye(2, dtype=cov.dtype, device=cov.device)
    return uv, cov2, depth, (means - origin).norm(dim=-1)


def _one_view(means, cov, opacities, colors, c2w, fx, fy, cx, cy, width, height, background):
    uv, cov2, depth, distance = project(means, cov, c2w, fx, fy, cx, cy)
    keep = depth > NEAR
    order = torch.argsort(torch.where(keep, depth, torch.full_like(depth, float("inf"))))
    order = order[: int(keep.sum())]
    uv, cov2, distance = uv[order], cov2[order], distance[order]
    o, c = opacities[order], colors[order]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means.dtype, device=means.device) + 0.5,
        torch.arange(width, dtype=means.dtype, device=means.device) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # (HW, 2)
    a, b, d = cov2[:, 0, 0], cov2[:, 0, 1], cov2[:, 1, 1]
    det = (a * d - b * b).clamp_min(1e-12)
    delta = pix[:, None, :] - uv[None]  # (HW, G, 2)
    power = -0.5 * (d * delta[..., 0] ** 2 - 2 * b * delta[..., 0] * delta[..., 1] + a * delta[..., 1] ** 2) / det
    alpha = (o * torch.exp(power.clamp_max(0))).clamp_max(ALPHA_MAX)
    alpha = alpha * (alpha >= ALPHA_MIN)
    before = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], dim=1), dim=1)
    weight = alpha * before  # (HW, G)
    acc = weight.sum(dim=1)
    rgb = weight @ c + (1 - acc)[:, None] * background
    dist = weight @ distance
    shape = (height, width)
    return rgb.T.reshape(-1, *shape), dist.reshape(1, *shape), acc.reshape(1, *shape)


def rasterize(means, scales, quats, opacities, colors, camera: Camera, *, background, backend: str = "torch") -> dict[str, torch.Tensor]:
    """Images of the Gaussians from every camera: ``rgb`` (N, C, H, W), ``depth`` and ``accumulation`` (N, 1, H, W).

    Args:
        means, scales, quats: (G, 3), (G, 3) (positive) and (G, 4) ``(w, x, y, z)``;
        opacities: (G,) in [0, 1]; colors: (G, C) (blended as they are);
        camera: the kernel's cameras; background: (C,) behind the Gaussians;
        backend: ``"torch"`` (this module) or ``"gsplat"`` (CUDA; the same images, see the module docstring).
    """
    if backend not in BACKENDS:
        raise DiffcoreError(f"unknown rasteriser backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "gsplat":
        from diff_3d.representations.gsplat_backend import rasterize_gsplat

        return rasterize_gsplat(means, scales, quats, opacities, colors, camera, background=background)
    cov = covariances(scales, quats)
    background = background.to(colors)
    outs = [
        _one_view(
            means,
            cov,
            opacities,
            colors,
            camera.camera_to_worlds[i].to(means),
            *(float(getattr(camera, k)[i]) for k in ("fx", "fy", "cx", "cy")),
            camera.width,
            camera.height,
            background,
        )
        for i in range(len(camera))
    ]
    rgb, depth, acc = (torch.stack(x) for x in zip(*outs, strict=True))
    return {"rgb": rgb, "depth": depth, "accumulation": acc}


__all__ = ["BACKENDS", "covariances", "project", "quaternion_matrix", "rasterize"]
