"""Datasets from folders and tensor files, and the one-line errors for bad ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from diff_safety.data import load_images, save_images
from diffcore.errors import DiffcoreError


def _png(path, value, size=(8, 8), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def test_folder_of_images_recursive_sorted(tmp_path):
    _png(tmp_path / "b.png", 255)
    _png(tmp_path / "a" / "c.png", 0)
    _png(tmp_path / ".hidden" / "x.png", 10)
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_images(tmp_path, shape=(1, 8, 8))
    assert data.names == ["a/c.png", "b.png"]
    assert data.images.shape == (2, 1, 8, 8) and float(data.images[0].max()) == -1.0 and float(data.images[1].min()) == 1.0
    rgb = load_images(tmp_path, shape=(3, 8, 8))
    assert rgb.images.shape == (2, 3, 8, 8)


def test_tensor_files_roundtrip_with_labels(tmp_path):
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    save_images(tmp_path / "d.safetensors", x, torch.tensor([0, 1, 2, 3]))
    data = load_images(tmp_path / "d.safetensors", shape=(1, 8, 8))
    assert torch.equal(data.images, x) and data.labels.tolist() == [0, 1, 2, 3]
    np.save(tmp_path / "codes.npy", np.full((2, 1, 8, 8), 255, dtype=np.uint8))
    assert float(load_images(tmp_path / "codes.npy").images.min()) == 1.0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.mkdir(), "holds no image files"),
        (lambda p: None, "does not exist"),
        (lambda p: _png(p / "x.png", 0, size=(6, 6)), "is 6x6 .* but the prior makes 8x8"),
        (lambda p: np.save(str(p) + ".npy", np.zeros((0, 1, 8, 8), dtype=np.float32)), "empty"),
        (lambda p: np.save(str(p) + ".npy", np.full((2, 1, 8, 8), 3.0, dtype=np.float32)), "must be in \\[-1, 1\\]"),
        (lambda p: np.save(str(p) + ".npy", np.zeros((2, 1, 4, 4), dtype=np.float32)), "images of 1x4x4 .* prior makes 1x8x8"),
    ],
)
def test_bad_datasets_are_one_line_errors(tmp_path, make, match):
    path = tmp_path / "data"
    make(path)
    if not path.exists() and path.with_suffix(".npy").exists():
        path = path.with_suffix(".npy")
    with pytest.raises(DiffcoreError, match=match) as info:
        load_images(path, shape=(1, 8, 8))
    assert "\n" not in str(info.value)
