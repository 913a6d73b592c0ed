"""Captures in nerfstudio's layout: the synthetic capture the editing check uses, and a reader with one-line errors.

A capture folder holds ``transforms.json`` (nerfstudio's ``nerfstudio-data`` format: shared
intrinsics ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h``, and ``frames``, each with a
``file_path`` relative to the folder and a 4x4 camera-to-world ``transform_matrix`` in OpenGL axes,
the project's convention) and the images. :func:`synthetic_capture` writes one: a procedural scene
of coloured primitives (:mod:`diff_3d.views.scenes`) rendered exactly from ``views`` cameras evenly
spread around it at two elevations, 32x32 PNGs by default, plus ``scene.json`` (the scene, so the
ground truth stays known). :func:`read_capture` reads any such folder into images and a
:class:`~diffcore.protocols.Camera` batch, or stops with one line saying what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from diff_3d.cameras import orbit_cameras
from diff_3d.views.scenes import PrimitiveScene
from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera

TRANSFORMS = "transforms.json"
SCENE = "scene.json"


@dataclass(frozen=True, eq=False)
class Capture:
    """Views (N, 3, H, W) in [-1, 1], their cameras, and the scene when the capture is synthetic."""

    images: torch.Tensor
    cameras: Camera
    scene: PrimitiveScene | None = None

    def __len__(self) -> int:
        return self.images.shape[0]


def capture_scene() -> PrimitiveScene:
    """The synthetic capture's scene: a red sphere, a blue box and a yellow cylinder on a white background."""
    return PrimitiveScene(
        kinds=("sphere", "box", "cylinder"),
        centers=[[-0.3, 0.15, 0.0], [0.3, -0.1, -0.1], [0.0, 0.35, -0.05]],
        sizes=[[0.32, 0.32, 0.32], [0.22, 0.3, 0.25], [0.18, 0.18, 0.3]],
        angles=[0.0, 0.5, 0.0],
        albedos=[[0.8, -0.7, -0.7], [-0.7, -0.4, 0.8], [0.8, 0.7, -0.8]],
    )


def capture_cameras(views: int = 30, size: int = 32, radius: float = 2.4, fov: float = 50.0) -> Camera:
    """``views`` cameras evenly around the origin, alternating between elevations 15 and 35 degrees."""
    azimuth = torch.arange(views, dtype=torch.float32) * (360.0 / views)
    elevation = torch.where(torch.arange(views) % 2 == 0, torch.tensor(15.0), torch.tensor(35.0))
    return orbit_cameras(azimuth, elevation, radius, fov=fov, size=size)


def _save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    pixels = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(path)


def write_capture(folder, images: torch.Tensor, cameras: Camera, *, scene: PrimitiveScene | None = None) -> Path:
    """Write ``images`` (N, 3, H, W) in [-1, 1] and ``cameras`` as a capture folder (see the module docstring)."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(images.shape[0]):
        name = f"images/frame_{i + 1:05d}.png"
        _save_png(images[i], folder / name)
        c2w = torch.cat([cameras.camera_to_worlds[i, :3, :4], torch.tensor([[0.0, 0.0, 0.0, 1.0]])]).tolist()
        frames.append({"file_path": name, "transform_matrix": c2w})
    meta = {
        "camera_model": "OPENCV",
        "fl_x": float(cameras.fx[0]),
        "fl_y": float(cameras.fy[0]),
        "cx": float(cameras.cx[0]),
        "cy": float(cameras.cy[0]),
        "w": int(cameras.width),
        "h": int(cameras.height),
        "frames": frames,
    }
    (folder / TRANSFORMS).write_text(json.dumps(meta, indent=2) + "\n")
    if scene is not None:
        fields = {k: getattr(scene, k) for k in ("centers", "sizes", "angles", "albedos")}
        record = {"kinds": list(scene.kinds), **{k: v.tolist() for k, v in fields.items()}, "background": scene.background}
        (folder / SCENE).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def synthetic_capture(folder, *, views: int = 30, size: int = 32) -> Path:
    """Render :func:`capture_scene` from :func:`capture_cameras` and write the capture folder."""
    scene, cameras = capture_scene(), capture_cameras(views, size)
    return write_capture(folder, scene.render(cameras), cameras, scene=scene)


def read_capture(folder) -> Capture:
    """The capture in ``folder`` (see the module docstring); a folder nerfstudio cannot read is a one-line error."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    path = folder / TRANSFORMS
    if not path.is_file():
        raise DiffcoreError(f"{folder} is not a capture nerfstudio can read: it has no {TRANSFORMS}")
    try:
        meta = json.loads(path.read_text())
        w, h = int(meta["w"]), int(meta["h"])
        fx, fy, cx, cy = (float(meta[k]) for k in ("fl_x", "fl_y", "cx", "cy"))
        frames = list(meta["frames"])
        poses = torch.tensor([f["transform_matrix"] for f in frames], dtype=torch.float32)
        files = [folder / f["file_path"] for f in frames]
    except (ValueError, KeyError, TypeError) as exc:
        raise DiffcoreError(
            f"{path} is not a nerfstudio transforms.json with shared intrinsics (fl_x, fl_y, cx, cy, w, h) and frames: {exc!r}"
        ) from None
    if not frames or tuple(poses.shape[1:]) != (4, 4) or not bool(torch.isfinite(poses).all()):
        raise DiffcoreError(f"{path} needs at least one frame, each with a finite 4x4 transform_matrix")
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                image = image.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise DiffcoreError(f"cannot read the capture's image {file}: {exc}") from None
        if image.size != (w, h):
            raise DiffcoreError(f"the capture's image {file} is {image.size[0]}x{image.size[1]}; transforms.json says {w}x{h}")
        pixels = torch.tensor(list(image.getdata()), dtype=torch.float32).reshape(h, w, 3).permute(2, 0, 1)
        images.append(pixels / 127.5 - 1)
    n = len(frames)
    camera = Camera(poses[:, :3, :4], torch.full((n,), fx), torch.full((n,), fy), torch.full((n,), cx), torch.full((n,), cy), w, h)
    scene = None
    if (folder / SCENE).is_file():
        record = json.loads((folder / SCENE).read_text())
        scene = PrimitiveScene(
            **{k: record[k] for k in ("kinds", "centers", "sizes", "angles", "albedos")}, background=record.get("background", 1.0)
        )
    return Capture(torch.stack(images), camera, scene)
