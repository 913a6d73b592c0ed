"""Training sets for the audit: a folder of images or a tensor file.

:func:`load_images` reads

- a **folder**: every image file Pillow reads (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``,
  ``.webp``, ``.tif``, ``.tiff``), recursively, in sorted path order; each is converted to the
  channels asked for (1: luminance, 3: RGB) and must have the size asked for;
- a **tensor file**: ``.safetensors`` (the tensor ``images``, or its only tensor; optional
  ``labels``) or ``.npy`` (no pickle), float images (N, C, H, W) in [-1, 1] or uint8 codes
  0..255 (mapped to [-1, 1]).

Every problem is a one-line :class:`~diffcore.errors.DiffcoreError` found before any work: a
missing path, an empty set, an unreadable file, or images whose shape is not the prior's.

>>> import tempfile, numpy as np
>>> with tempfile.TemporaryDirectory() as d:
...     np.save(f"{d}/x.npy", np.zeros((3, 1, 4, 4), dtype=np.uint8))
...     data = load_images(f"{d}/x.npy", shape=(1, 4, 4))
>>> tuple(data.images.shape), float(data.images.min())
((3, 1, 4, 4), -1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from diffcore.errors import DiffcoreError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TENSOR_SUFFIXES = (".safetensors", ".npy")


@dataclass
class ImageData:
    """Images (N, C, H, W) float32 in [-1, 1], optional labels (N,), and where each came from."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    names: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return self.images.shape[0]


def _shape_text(shape) -> str:
    return "x".join(str(s) for s in shape)


def _check(images: torch.Tensor, shape, where: str) -> torch.Tensor:
    if images.ndim != 4:
        raise DiffcoreError(f"{where} holds a tensor of shape {tuple(images.shape)}; expected images (N, C, H, W)")
    if images.shape[0] == 0:
        raise DiffcoreError(f"{where} holds no images (the dataset is empty)")
    if images.dtype == torch.uint8:
        images = images.float() / 127.5 - 1
    elif images.is_floating_point():
        images = images.float()
        if not torch.isfinite(images).all():
            raise DiffcoreError(f"{where} holds non-finite values")
        low, high = float(images.min()), float(images.max())
        if low < -1.001 or high > 1.001:
            raise DiffcoreError(
                f"{where} holds values from {low:.3g} to {high:.3g}; float images must be in [-1, 1] (or give uint8 codes 0..255)"
            )
    else:
        raise DiffcoreError(f"{where} holds {images.dtype} values; expected float images in [-1, 1] or uint8 codes")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        raise DiffcoreError(
            f"{where} holds images of {_shape_text(images.shape[1:])} (C x H x W) but the prior makes {_shape_text(shape)}; resize the "
            "dataset to match"
        )
    return images


def _read_tensor_file(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    if path.suffix == ".npy":
        import numpy as np

        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DiffcoreError(f"cannot read {str(path)!r} as a .npy array (pickled arrays are refused): {exc}") from None
        return torch.from_numpy(np.ascontiguousarray(array)), None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise DiffcoreError(f"cannot read {str(path)!r} as safetensors: {exc}") from None
    if "images" in tensors:
        images = tensors["images"]
    elif len(tensors) == 1:
        images = next(iter(tensors.values()))
    else:
        raise DiffcoreError(f"{str(path)!r} holds tensors {', '.join(sorted(tensors))}; name the images 'images' (and the labels 'labels')")
    return images, tensors.get("labels")


def _read_folder(folder: Path, shape) -> tuple[torch.Tensor, list[str]]:
    from PIL import Image

    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise DiffcoreError(f"the folder {str(folder)!r} holds no image files ({', '.join(IMAGE_SUFFIXES)}): the dataset is empty")
    channels = shape[0] if shape is not None else None
    if channels not in (None, 1, 3):
        raise DiffcoreError(
            f"the prior makes images with {channels} channels; image files give 1 (grayscale) or 3 (RGB): use a tensor file"
        )
    out = []
    for path in files:
        try:
            with Image.open(path) as image:
                image.load()
                mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if image.mode in ("L", "1", "I", "I;16", "F") else "RGB")
                converted = image.convert(mode)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DiffcoreError(f"cannot read image {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
        w, h = converted.size
        if shape is not None and (h, w) != tuple(shape[1:]):
            raise DiffcoreError(
                f"image {str(path)!r} is {w}x{h} (width x height) but the prior makes {shape[2]}x{shape[1]}; resize the dataset to match"
            )
        data = torch.frombuffer(bytearray(converted.tobytes()), dtype=torch.uint8).reshape(h, w, -1).permute(2, 0, 1)
        if out and data.shape != out[0].shape:
            raise DiffcoreError(
                f"image {str(path)!r} has shape {tuple(data.shape)} but {files[0].name!r} has {tuple(out[0].shape)}; every image must "
                "have one size"
            )
        out.append(data)
    return torch.stack(out), [str(p.relative_to(folder)) for p in files]


def load_images(path, *, shape=None) -> ImageData:
    """The dataset at ``path`` (a folder of images or a tensor file), checked against ``shape`` (C, H, W) when given."""
    path = Path(path)
    if not path.exists():
        raise DiffcoreError(f"the dataset {str(path)!r} does not exist; give a folder of images or a .safetensors / .npy file")
    if path.is_dir():
        codes, names = _read_folder(path, shape)
        return ImageData(_check(codes, shape, f"the folder {str(path)!r}"), None, names, str(path))
    if path.suffix.lower() not in TENSOR_SUFFIXES:
        raise DiffcoreError(f"cannot read {str(path)!r}: give a folder of images or a {' / '.join(TENSOR_SUFFIXES)} file")
    images, labels = _read_tensor_file(path)
    images = _check(images, shape, f"{str(path)!r}")
    if labels is not None:
        labels = labels.reshape(-1).long()
        if labels.shape[0] != images.shape[0]:
            raise DiffcoreError(f"{str(path)!r} holds {images.shape[0]} images but {labels.shape[0]} labels")
    return ImageData(images, labels, [f"{path.name}[{i}]" for i in range(images.shape[0])], str(path))


def save_images(path, images: torch.Tensor, labels: torch.Tensor | None = None) -> Path:
    """Write images (and labels) as a ``.safetensors`` file that :func:`load_images` reads back."""
    from safetensors.torch import save_file

    tensors = {"images": images.detach().float().cpu().contiguous()}
    if labels is not None:
        tensors["labels"] = labels.detach().long().cpu().contiguous()
    save_file(tensors, str(path))
    return Path(path)


__all__ = ["IMAGE_SUFFIXES", "ImageData", "load_images", "save_images"]
