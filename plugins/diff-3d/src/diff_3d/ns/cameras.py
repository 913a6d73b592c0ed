"""diffcore :class:`~diffcore.protocols.Camera` <-> nerfstudio ``Cameras``: the same convention, other containers.

Both hold camera-to-world matrices (N, 3, 4) with OpenGL axes and pinhole intrinsics in pixels,
and both put a pixel's ray through its centre, so the rays of :func:`diff_3d.cameras.camera_rays`
are nerfstudio's ``generate_rays`` (checked in the tests).

"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera


def to_nerfstudio(camera: Camera):
    """nerfstudio perspective ``Cameras`` of a diffcore ``Camera`` batch."""
    from nerfstudio.cameras.cameras import Cameras, CameraType

    return Cameras(
        camera_to_worlds=camera.camera_to_worlds,
        fx=camera.fx,
        fy=camera.fy,
        cx=camera.cx,
        cy=camera.cy,
        width=camera.width,
        height=camera.height,
        camera_type=CameraType.PERSPECTIVE,
    )


def from_nerfstudio(cameras) -> Camera:
    """A diffcore ``Camera`` batch of nerfstudio ``Cameras`` (perspective, one image size)."""
    from nerfstudio.cameras.cameras import CameraType

    if bool((cameras.camera_type != CameraType.PERSPECTIVE.value).any()):
        raise DiffcoreError("diff-3d renders pinhole (perspective) cameras only")
    widths, heights = cameras.width.reshape(-1), cameras.height.reshape(-1)
    if bool((widths != widths[0]).any()) or bool((heights != heights[0]).any()):
        raise DiffcoreError("the cameras of one batch must share an image size")
    c2w = cameras.camera_to_worlds.reshape(-1, 3, 4)
    return Camera(
        c2w,
        cameras.fx.reshape(-1, 1),
        cameras.fy.reshape(-1, 1),
        cameras.cx.reshape(-1, 1),
        cameras.cy.reshape(-1, 1),
        int(widths[0]),
        int(heights[0]),
    )


def ray_bundle(camera: Camera):
    """A nerfstudio ``RayBundle`` of every pixel of a diffcore camera batch: N H W rays, camera by camera, row by row.

    The rays are :func:`diff_3d.cameras.camera_rays` (nerfstudio's own for each camera); the pixel
    area is ``1 / (fx fy)`` (nerfstudio's at the image centre), camera indices index the batch.
    """
    from nerfstudio.cameras.rays import RayBundle

    from diff_3d.cameras import camera_rays

    origins, directions = camera_rays(camera)
    n, h, w = len(camera), camera.height, camera.width
    area = (1.0 / (camera.fx * camera.fy)).reshape(n, 1, 1, 1).expand(n, h, w, 1)
    indices = torch.arange(n, device=origins.device).reshape(n, 1, 1, 1).expand(n, h, w, 1)
    return RayBundle(
        origins=origins.reshape(-1, 3),
        directions=directions.reshape(-1, 3),
        pixel_area=area.reshape(-1, 1),
        camera_indices=indices.reshape(-1, 1),
    )
