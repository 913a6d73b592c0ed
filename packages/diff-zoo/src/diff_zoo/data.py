"""The data of the zoo priors, made only from installed packages or procedurally.

Each builder returns a :class:`Dataset` with a ``train`` and a ``test`` :class:`ImageSet`, and
is deterministic: the same arguments give the same bytes, on any machine, without a network.

- :func:`digits`: scikit-learn's 8x8 handwritten digits (values 0..16) upsampled bilinearly to
  16x16, one channel, labels 0-9; a fixed stratified 80/20 split (``random_state=0``), kept by
  index.
- :func:`patches`: random 32x32 RGB crops of the photographs that scikit-image and
  scikit-learn ship, at scales 1, 1/2 and 1/4; scikit-image's ``astronaut`` is held out of
  training and gives the test crops (a representative photo: on the cards' patch statistics the
  other photos' crops lie 2.6 held-out spreads from it and a fitted Gaussian 20.5; chelsea, the
  first choice, was an outlier at 30.6 vs 20.7, closer to the Gaussian than to the photos).
- :func:`textures`: random 32x32 crops of scikit-image's brick, grass and gravel textures
  (grayscale, kept as one channel) at half resolution, labelled by texture; the bottom quarter
  of each texture is held out and gives the test crops.
- :func:`phantoms`: 64x64 random-ellipse phantoms (:mod:`diff_zoo.phantoms`); scikit-image's
  Shepp-Logan phantom is the held-out test image and is never generated.

Images are stored as uint8 codes; ``code / 127.5 - 1`` is the pixel value in [-1, 1], the range
every diffcore image prior uses.

>>> data = digits()
>>> len(data.train), len(data.test), tuple(data.train.images().shape)
(1437, 360, (1437, 1, 16, 16))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from diff_zoo import phantoms as _phantoms
from diffcore.errors import DiffcoreError, closest

# The photographs of the patches prior: scikit-image's (shipped inside its wheel, no download)
# and scikit-learn's two sample images. astronaut is the held-out test image.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "motorcycle", "chelsea")
SKLEARN_PHOTOS = ("china", "flower")
HELD_OUT_PHOTO = "astronaut"
TEXTURES = ("brick", "grass", "gravel")
TEST_SEED_OFFSET = 2**32  # test streams are seeded far from any training seed


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images as uint8 codes (N, C, H, W), with optional labels (N,) and crop origins (N, 3).

    ``origin[i] = (source, top, left)``: crop ``i`` is ``sources[source][:, top:top+H, left:left+W]``
    of the dataset it belongs to (for cropped data only).
    """

    codes: torch.Tensor
    labels: torch.Tensor | None = None
    origin: torch.Tensor | None = None

    def __post_init__(self):
        if self.codes.dtype != torch.uint8 or self.codes.ndim != 4:
            raise DiffcoreError(f"ImageSet codes must be uint8 (N, C, H, W), got {self.codes.dtype} {tuple(self.codes.shape)}")

    def __len__(self) -> int:
        return self.codes.shape[0]

    def images(self, index=None) -> torch.Tensor:
        """The images (or those at ``index``) as float32 in [-1, 1]."""
        codes = self.codes if index is None else self.codes[index]
        return to_images(codes)

    def to(self, device) -> ImageSet:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return ImageSet(self.codes.to(device), move(self.labels), move(self.origin))


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training set, a held-out test set, the class names (if labelled) and a description."""

    name: str
    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.codes.shape[1:])


def to_codes(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] to uint8 codes (rounded)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def to_images(codes: torch.Tensor) -> torch.Tensor:
    """uint8 codes to float32 images in [-1, 1]."""
    return codes.float() / 127.5 - 1


# -- digits ------------------------------------------------------------------------------


def digits(*, split_seed: int = 0, test_size: float = 0.2, size: int = 16, device=None) -> Dataset:
    """scikit-learn's digits upsampled to ``size`` (bilinear), with a fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float()[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    codes = to_codes(x)
    labels = torch.from_numpy(bunch.target).long()
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(index, test_size=test_size, random_state=split_seed, stratify=bunch.target)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    info = {
        "source": "sklearn.datasets.load_digits (1797 images, 8x8, values 0..16)",
        "preprocessing": f"values / 16, bilinear upsampling to {size}x{size} (align_corners=False), scaled to [-1, 1]",
        "split": f"stratified train_test_split(test_size={test_size}, random_state={split_seed}); indices into load_digits()",
        "train_indices": train_idx.tolist(),
        "test_indices": test_idx.tolist(),
    }
    t_i, s_i = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return Dataset(
        "digits",
        ImageSet(codes[t_i], labels[t_i]).to(device),
        ImageSet(codes[s_i], labels[s_i]).to(device),
        classes=tuple(str(d) for d in range(10)),
        info=info,
    )


# -- photographs and textures -------------------------------------------------------------


def photo(name: str) -> torch.Tensor:
    """One of the shipped photographs as uint8 (3, H, W). No download: these files are in the wheels."""
    if name in SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image

        array = load_sample_image(f"{name}.jpg")
    elif name in SKIMAGE_PHOTOS:
        import skimage.data

        array = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    else:
        known = SKIMAGE_PHOTOS + SKLEARN_PHOTOS
        hint = closest(name, known)
        raise DiffcoreError(f"unknown photo {name!r}; known: {', '.join(known)}" + (f". Did you mean {hint!r}?" if hint else ""))
    return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def texture(name: str) -> torch.Tensor:
    """scikit-image's grayscale ``brick``, ``grass`` or ``gravel`` texture as uint8 (1, 512, 512)."""
    if name not in TEXTURES:
        raise DiffcoreError(f"unknown texture {name!r}; known: {', '.join(TEXTURES)}")
    import skimage.data

    return torch.from_numpy(getattr(skimage.data, name)())[None].contiguous()


def downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor`` x ``factor`` blocks of a uint8 (C, H, W) image (box filter; edges that do not fill a block are dropped)."""
    if factor == 1:
        return image
    return F.avg_pool2d(image.float()[None], factor)[0].round().to(torch.uint8)


def random_crops(
    sources: list[torch.Tensor], n: int, size: int, generator: torch.Generator, weights=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random ``size`` x ``size`` crops of uint8 (C, H, W) ``sources``.

    A source is picked with probability ``weights`` (default: uniform), then a position
    uniformly. Returns the crops (n, C, size, size) and their origins (n, 3) = (source, top, left).
    """
    for s in sources:
        if s.shape[-2] < size or s.shape[-1] < size:
            raise DiffcoreError(f"a source of shape {tuple(s.shape)} is smaller than the crop size {size}")
    p = (
        torch.full((len(sources),), 1.0 / len(sources), dtype=torch.float64)
        if weights is None
        else torch.as_tensor(weights, dtype=torch.float64)
    )
    which = torch.multinomial(p / p.sum(), n, replacement=True, generator=generator)
    u = torch.rand((n, 2), generator=generator, dtype=torch.float64)
    limits = torch.tensor([[s.shape[-2] - size + 1, s.shape[-1] - size + 1] for s in sources], dtype=torch.float64)
    corner = (u * limits[which]).floor().long()
    origin = torch.cat([which[:, None], corner], 1)
    crops = torch.empty((n, sources[0].shape[0], size, size), dtype=torch.uint8)
    for i, (k, top, left) in enumerate(origin.tolist()):
        crops[i] = sources[k][:, top : top + size, left : left + size]
    return crops, origin


def patch_sources(photos, scales) -> tuple[list[torch.Tensor], list[str]]:
    """Each photo at each scale (1/factor), and a name per source such as ``coffee@1/2``."""
    sources, names = [], []
    for name in photos:
        image = photo(name)
        for factor in scales:
            sources.append(downsample(image, factor))
            names.append(f"{name}@1/{factor}")
    return sources, names


def patches(
    *,
    n_train: int = 32768,
    n_test: int = 2048,
    size: int = 32,
    scales=(1, 2, 4),
    held_out: str = HELD_OUT_PHOTO,
    seed: int = 0,
    device=None,
) -> Dataset:
    """Random RGB crops of the shipped photographs; ``held_out`` gives the test crops only."""
    train_photos = [p for p in SKIMAGE_PHOTOS + SKLEARN_PHOTOS if p != held_out]
    if held_out not in SKIMAGE_PHOTOS + SKLEARN_PHOTOS:
        raise DiffcoreError(f"held_out must be one of the shipped photos, got {held_out!r}")
    train_sources, train_names = patch_sources(train_photos, scales)
    test_sources, test_names = patch_sources([held_out], scales)
    g = torch.Generator().manual_seed(seed)
    train, train_origin = random_crops(train_sources, n_train, size, g)
    g_test = torch.Generator().manual_seed(seed + TEST_SEED_OFFSET)
    test, test_origin = random_crops(test_sources, n_test, size, g_test)
    info = {
        "source": "photographs shipped inside scikit-image (skimage.data) and scikit-learn (load_sample_image)",
        "train_photos": train_photos,
        "held_out_photo": held_out,
        "preprocessing": (
            f"each photo box-downsampled by {', '.join(map(str, scales))}; uniform random {size}x{size} crops, source chosen uniformly"
        ),
        "train_sources": train_names,
        "test_sources": test_names,
        "split": f"{n_train} training crops (seed {seed}) from {len(train_photos)} photos; {n_test} test crops from {held_out!r} only",
    }
    return Dataset("patches", ImageSet(train, origin=train_origin).to(device), ImageSet(test, origin=test_origin).to(device), info=info)


def texture_sources(scale: int = 2, test_fraction: float = 0.25) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each texture downsampled by ``scale``, split by rows into a training top and a held-out bottom."""
    train, test = [], []
    for name in TEXTURES:
        image = downsample(texture(name), scale)
        cut = image.shape[-2] - round(image.shape[-2] * test_fraction)
        train.append(image[:, :cut])
        test.append(image[:, cut:])
    return train, test


def textures(
    *,
    n_train_per_class: int = 8192,
    n_test_per_class: int = 512,
    size: int = 32,
    scale: int = 2,
    test_fraction: float = 0.25,
    seed: int = 0,
    device=None,
) -> Dataset:
    """Crops of brick, grass and gravel labelled 0, 1, 2; the bottom ``test_fraction`` rows are held out."""
    train_src, test_src = texture_sources(scale, test_fraction)

    def crops(sources, n_per_class, g):
        parts = [random_crops([s], n_per_class, size, g) for s in sources]
        codes = torch.cat([c for c, _ in parts])
        origin = torch.cat([o + torch.tensor([k, 0, 0]) for k, (_, o) in enumerate(parts)])
        labels = torch.arange(len(sources)).repeat_interleave(n_per_class)
        return ImageSet(codes, labels, origin)

    train = crops(train_src, n_train_per_class, torch.Generator().manual_seed(seed))
    test = crops(test_src, n_test_per_class, torch.Generator().manual_seed(seed + TEST_SEED_OFFSET))
    rows = train_src[0].shape[-2]
    info = {
        "source": "skimage.data.brick, grass, gravel (512x512 grayscale)",
        "channels": "1 (the textures are grayscale; not replicated to RGB)",
        "preprocessing": (
            f"box-downsampled by {scale} to {train_src[0].shape[-1]}x{train_src[0].shape[-1]}; uniform random {size}x{size} crops"
        ),
        "split": (
            f"rows 0..{rows - 1} of each downsampled texture for training ({n_train_per_class} crops per class), "
            f"rows {rows}.. held out ({n_test_per_class} test crops per class)"
        ),
    }
    return Dataset("textures", train.to(device), test.to(device), classes=TEXTURES, info=info)


# -- phantoms -------------------------------------------------------------------------------


def phantoms(*, n_train: int = 16384, n_test: int = 1024, size: int = 64, seed: int = 0, device=None) -> Dataset:
    """Random-ellipse phantoms in [0, 1] (as codes); the test set comes from a separate random stream."""
    train = _phantoms.random_ellipse_phantoms(n_train, size, generator=torch.Generator().manual_seed(seed), device=device)
    test = _phantoms.random_ellipse_phantoms(n_test, size, generator=torch.Generator().manual_seed(seed + TEST_SEED_OFFSET), device=device)
    info = {
        "source": "procedural: diff_zoo.phantoms.random_ellipse_phantoms (Shepp-Logan-style additive ellipses)",
        "preprocessing": f"{size}x{size}, one channel, intensities in [0, 1] scaled to [-1, 1]",
        "split": f"{n_train} training phantoms (seed {seed}), {n_test} test phantoms (seed {seed} + 2**32)",
        "held_out": "skimage.data.shepp_logan_phantom() resized to the same size; never generated",
    }
    return Dataset("phantoms", ImageSet(to_codes(train)), ImageSet(to_codes(test)), info=info)


def held_out_images(name: str) -> dict[str, torch.Tensor]:
    """The whole held-out images of a dataset, as float (C, H, W) in [-1, 1]: test images for demos.

    ``patches``: the held-out photograph; ``textures``: the held-out bottom strip of each texture;
    ``phantoms``: the Shepp-Logan phantom at 64x64; ``digits``: none (the test split is the held-out set).
    """
    if name == "patches":
        return {HELD_OUT_PHOTO: to_images(photo(HELD_OUT_PHOTO))}
    if name == "textures":
        return {t: to_images(s) for t, s in zip(TEXTURES, texture_sources()[1])}
    if name == "phantoms":
        return {"shepp_logan": _phantoms.shepp_logan(64) * 2 - 1}
    if name == "digits":
        return {}
    raise DiffcoreError(f"unknown dataset {name!r}; known: {', '.join(BUILDERS)}")


BUILDERS: dict[str, Callable[..., Dataset]] = {"digits": digits, "patches": patches, "textures": textures, "phantoms": phantoms}


def build(name: str, **options) -> Dataset:
    """Build the dataset ``name`` with builder ``options``."""
    if name not in BUILDERS:
        hint = closest(name, BUILDERS)
        raise DiffcoreError(f"unknown dataset {name!r}; known: {', '.join(BUILDERS)}" + (f". Did you mean {hint!r}?" if hint else ""))
    return BUILDERS[name](**options)
