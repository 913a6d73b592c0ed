"""The zoo priors' held-out images, the one place diff-inverse reads diff-zoo (the ``zoo`` extra).

diff-inverse needs diff-zoo only for test images: the embedded image of ``diffcore inverse solve``
without ``--input``, the image benchmark's default test sets and the tour. It reads them through
diff-zoo's documented data API (``diff_zoo.recipes.get_recipe`` for a prior's data set,
``diff_zoo.data.build`` and ``diff_zoo.data.held_out_images``). Without diff-zoo every function
here raises a :class:`~diffcore.errors.DiffcoreError` naming the extra to install.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffcore.errors import DiffcoreError

EXTRA = 'pip install "diff-inverse[zoo]"'


def available() -> bool:
    """Whether diff-zoo is installed."""
    try:
        import diff_zoo.data  # noqa: F401
    except ImportError:
        return False
    return True


def _data():
    try:
        from diff_zoo import data
    except ImportError:
        raise DiffcoreError(f"the zoo's held-out images need diff-zoo: {EXTRA}") from None
    return data


def data_name(prior_spec: str) -> str | None:
    """The data set of a zoo prior spec (``zoo:digits`` -> ``digits``); None for other priors or without diff-zoo."""
    from diffcore.registry import parse_spec

    name, _ = parse_spec(prior_spec)
    if not name.startswith("zoo:"):
        return None
    try:
        from diff_zoo.recipes import get_recipe
    except ImportError:
        return None
    return get_recipe(name).data


@dataclass(frozen=True, eq=False)
class HeldOutImages:
    """Test images ``(N, C, H, W)`` in [-1, 1], what they are, and an optional featured image (its index)."""

    images: torch.Tensor
    description: str
    featured: int | None = None
    featured_name: str = ""


def test_set(prior_spec: str, n: int, shape: tuple[int, int, int]) -> HeldOutImages:
    """``n`` held-out test images of a zoo prior's data, of the prior's ``shape``."""
    name = data_name(prior_spec)
    if name is None:
        extra = "" if available() else f" ({EXTRA} for the zoo's)"
        raise DiffcoreError(f"there is no default test set for prior {prior_spec!r} (only zoo priors have one); pass images{extra}")
    data = _data()

    def check(images):
        if tuple(images.shape[1:]) != tuple(shape):
            raise DiffcoreError(f"the {name} test images are {tuple(images.shape[1:])} but the prior takes {tuple(shape)}")
        return images.float()

    if name == "digits":
        test = data.build("digits").test
        k = min(n, len(test))
        return HeldOutImages(check(test.images(torch.arange(k))), f"the first {k} held-out test digits of scikit-learn's digits, 16x16")
    if name == "patches":
        test = data.build("patches", n_train=1).test  # the test crops do not depend on the training set
        k = min(n, len(test))
        return HeldOutImages(
            check(test.images(torch.arange(k))),
            f"the first {k} 32x32 test crops of the held-out photo ({data.HELD_OUT_PHOTO!r}, scales 1, 1/2, 1/4)",
        )
    if name == "textures":
        test = data.build("textures", n_train_per_class=1).test
        index = torch.linspace(0, len(test) - 1, min(n, len(test))).round().long()  # spread over the three textures
        return HeldOutImages(
            check(test.images(index)), f"{len(index)} 32x32 test crops spread over the held-out strips of brick, grass and gravel"
        )
    if name == "phantoms":
        shepp = data.held_out_images("phantoms")["shepp_logan"][None]
        test = data.build("phantoms", n_train=1).test
        rest = test.images(torch.arange(min(n - 1, len(test)))) if n > 1 else shepp[:0]
        return HeldOutImages(
            check(torch.cat([shepp, rest])),
            f"the Shepp-Logan phantom (scikit-image, 64x64) and the first {len(rest)} held-out random-ellipse test phantoms",
            0,
            "Shepp-Logan",
        )
    raise DiffcoreError(f"there is no default test set for data {name!r} of prior {prior_spec!r}; pass images")


def embedded_image(prior_spec: str, shape: tuple[int, int, int]) -> tuple[torch.Tensor, str]:
    """One held-out test image of a zoo prior's data with the prior's shape, and what it is."""
    from diffcore.registry import parse_spec

    missing = f"there is no embedded test image for prior {prior_spec!r} ({shape[0]}x{shape[1]}x{shape[2]}); pass one with --input"
    name = data_name(prior_spec)
    if name is None:
        raise DiffcoreError(missing + ("" if available() else f" ({EXTRA} for the zoo's)"))
    data = _data()
    for key, image in data.held_out_images(name).items():
        if tuple(image.shape) == tuple(shape):
            return image.float(), f"{parse_spec(prior_spec)[0]} held-out image {key!r}"
    if name == "digits":
        test = data.build("digits").test
        if tuple(test.codes.shape[1:]) == tuple(shape):
            return test.images([0])[0], f"zoo:digits held-out test digit 0 (label {int(test.labels[0])}) of scikit-learn's digits"
    raise DiffcoreError(missing)


def digits(n: int, *, every: int = 1) -> torch.Tensor:
    """``n`` held-out test digits (every ``every``-th), ``(n, 1, 16, 16)`` in [-1, 1]: the tour's and the tests'."""
    return _data().digits().test.images(torch.arange(n) * every)
