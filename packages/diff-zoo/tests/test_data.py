"""The data builders: deterministic, right shapes and ranges, and held-out data kept out of training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diff_zoo import data, phantoms


def test_digits_split_is_fixed_stratified_and_complete():
    a, b = data.digits(), data.digits()
    assert torch.equal(a.train.codes, b.train.codes) and torch.equal(a.test.labels, b.test.labels)
    assert (len(a.train), len(a.test)) == (1437, 360)
    assert a.shape == (1, 16, 16) and a.train.codes.dtype == torch.uint8
    train_idx, test_idx = set(a.info["train_indices"]), set(a.info["test_indices"])
    assert not train_idx & test_idx and len(train_idx | test_idx) == 1797
    counts = torch.bincount(a.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: about 20% of each class
    images = a.train.images()
    assert images.min() == -1 and images.max() == 1
    assert a.classes == tuple("0123456789")


def test_digits_images_are_the_upsampled_sklearn_digits():
    from skimage.transform import resize
    from sklearn.datasets import load_digits

    d = data.digits()
    raw = load_digits()
    index = d.info["test_indices"][:20]
    assert torch.equal(d.test.labels[:20], torch.from_numpy(raw.target[index]))
    # bilinear with half-pixel centres and edge clamping, as scikit-image does it (an independent oracle)
    expected = np.stack([resize(raw.images[i] / 16, (16, 16), order=1, mode="edge", anti_aliasing=False) for i in index])
    got = (d.test.images()[:20, 0].numpy() + 1) / 2
    assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6  # up to the uint8 rounding


def _check_origins(image_set, sources, size):
    for crop, (k, top, left) in zip(image_set.codes, image_set.origin.tolist()):
        assert torch.equal(crop, sources[k][:, top : top + size, left : left + size])


def test_patches_are_deterministic_crops_of_the_training_photos_only():
    a = data.patches(n_train=200, n_test=40, seed=3)
    b = data.patches(n_train=200, n_test=40, seed=3)
    assert torch.equal(a.train.codes, b.train.codes) and torch.equal(a.test.codes, b.test.codes)
    assert not torch.equal(a.train.codes, data.patches(n_train=200, n_test=40, seed=4).train.codes)
    assert a.shape == (3, 32, 32) and a.train.labels is None
    assert data.HELD_OUT_PHOTO == "astronaut" and a.info["held_out_photo"] == "astronaut"
    assert "astronaut" not in a.info["train_photos"]
    assert not any(name.startswith("astronaut") for name in a.info["train_sources"])
    assert all(name.startswith("astronaut") for name in a.info["test_sources"])
    train_sources, _ = data.patch_sources(a.info["train_photos"], (1, 2, 4))
    test_sources, _ = data.patch_sources(["astronaut"], (1, 2, 4))
    _check_origins(a.train, train_sources, 32)
    _check_origins(a.test, test_sources, 32)
    assert set(a.train.origin[:, 0].tolist()) == set(range(len(train_sources)))  # every photo and scale is used


def test_textures_keep_the_bottom_quarter_out_of_training():
    d = data.textures(n_train_per_class=100, n_test_per_class=20)
    assert d.shape == (1, 32, 32) and d.classes == ("brick", "grass", "gravel")
    assert torch.equal(torch.bincount(d.train.labels), torch.tensor([100, 100, 100]))
    train_src, test_src = data.texture_sources()
    assert train_src[0].shape == (1, 192, 256) and test_src[0].shape == (1, 64, 256)
    assert torch.equal(d.train.origin[:, 0], d.train.labels)
    _check_origins(d.train, train_src, 32)
    _check_origins(d.test, test_src, 32)
    assert int((d.train.origin[:, 1] + 32).max()) <= 192  # crops end above the held-out rows
    assert torch.equal(d.train.codes, data.textures(n_train_per_class=100, n_test_per_class=20).train.codes)


def test_phantoms_are_deterministic_ellipse_images_unlike_shepp_logan():
    a = data.phantoms(n_train=300, n_test=30, seed=1)
    assert torch.equal(a.train.codes, data.phantoms(n_train=300, n_test=30, seed=1).train.codes)
    assert a.shape == (1, 64, 64)
    x = (a.train.images() + 1) / 2
    assert x.min() >= 0 and x.max() <= 1
    assert (x[:, :, 0, :] == 0).all() and (x[:, :, :, 0] == 0).all()  # the head stays inside the image
    assert ((x > 0.9).flatten(1).sum(1) > 20).all()  # each has a bright skull
    # the held-out Shepp-Logan phantom is not among the training images, nor close to any
    sl = phantoms.shepp_logan(64)
    assert sl.shape == (1, 64, 64) and 0.9 < sl.max() <= 1
    mse = ((x - sl) ** 2).flatten(1).mean(1)
    assert mse.min() > 0.005
    # the test set comes from another stream
    assert not any(torch.equal(t, u) for t in a.test.codes for u in a.train.codes[:30])


def test_phantom_rendering_does_not_depend_on_chunking():
    full = phantoms.random_ellipse_phantoms(10, 32, generator=torch.Generator().manual_seed(0))
    chunked = phantoms.random_ellipse_phantoms(10, 32, generator=torch.Generator().manual_seed(0), chunk=3)
    assert torch.equal(full, chunked)


def test_a_centred_disc_is_rendered_with_the_right_area():
    p = {k: torch.tensor([[v]], dtype=torch.float64) for k, v in dict(x=0.0, y=0.0, a=0.5, b=0.5, angle=0.3, value=1.0).items()}
    image = phantoms.render_ellipses(p, 128)
    area = float(image.sum()) * (2 / 128) ** 2
    assert area == pytest.approx(np.pi * 0.25, rel=2e-3)


def test_held_out_images():
    assert tuple(data.held_out_images("patches")["astronaut"].shape) == (3, 512, 512)
    tex = data.held_out_images("textures")
    assert sorted(tex) == ["brick", "grass", "gravel"] and tuple(tex["brick"].shape) == (1, 64, 256)
    sl = data.held_out_images("phantoms")["shepp_logan"]
    assert tuple(sl.shape) == (1, 64, 64) and sl.min() == -1
    assert data.held_out_images("digits") == {}


def test_unknown_names_are_clear_errors():
    from diffcore.errors import DiffcoreError

    with pytest.raises(DiffcoreError, match="(?i)did you mean 'digits'"):
        data.build("digit")
    with pytest.raises(DiffcoreError, match="unknown photo"):
        data.photo("lena")


def test_only_shipped_image_files_are_used():
    """The photographs and textures come from files inside the installed wheels (no pooch download)."""
    from pathlib import Path

    import skimage.data

    folder = Path(skimage.data.__file__).parent
    for name in (
        "astronaut.png",
        "coffee.png",
        "rocket.jpg",
        "ihc.png",
        "motorcycle_left.png",
        "chelsea.png",
        "brick.png",
        "grass.png",
        "gravel.png",
        "phantom.png",
    ):
        assert (folder / name).is_file(), name
