"""Pictures of a zoo prior: a grid of samples next to a grid of real held-out images.

Conditional samples are drawn with labels ``i % n_classes``; the real images are laid out the
same way (the ``i``-th real image shown has label ``i % n_classes``), so each column of the
two grids shows one class.

>>> import torch
>>> grid = side_by_side(torch.zeros(8, 1, 4, 4), torch.ones(8, 1, 4, 4), nrow=4)
>>> grid.shape, grid.dtype.name
((14, 60, 3), 'uint8')
"""

from __future__ import annotations

import torch

# images per row and how many to show, per prior (a row of digits is one of each class)
LAYOUT = {"digits": (10, 40), "patches": (6, 24), "textures": (6, 24), "phantoms": (4, 12)}


def matching_real(real: torch.Tensor, labels: torch.Tensor | None, count: int, n_classes: int) -> torch.Tensor:
    """``count`` real images where the ``i``-th has label ``i % n_classes`` (the first ``count`` when unlabelled)."""
    if labels is None or not n_classes:
        return real[:count]
    pools = [torch.nonzero(labels.cpu() == k)[:, 0].tolist() for k in range(n_classes)]
    pools = [p for p in pools if p] or [list(range(len(real)))]
    index = [(pool := pools[i % len(pools)])[(i // len(pools)) % len(pool)] for i in range(count)]
    return real[index]


def side_by_side(samples: torch.Tensor, real: torch.Tensor, nrow: int, gap: int = 8, height: int = 0):
    """One uint8 (H, W, 3) picture: the grid of ``samples``, a white gap, the grid of ``real``.

    ``height``: enlarge (nearest neighbour, at most 4x) to about this many pixels, so that
    16x16 digits stay visible.
    """
    import numpy as np

    from diffcore.tour import image_grid

    left, right = image_grid(samples, nrow=nrow), image_grid(real, nrow=nrow)
    h = max(left.shape[0], right.shape[0])
    pad = lambda g: np.pad(g, ((0, h - g.shape[0]), (0, 0), (0, 0)), constant_values=255)  # noqa: E731
    grid = np.concatenate([pad(left), np.full((h, gap, 3), 255, np.uint8), pad(right)], 1)
    k = min(4, max(1, height // h))
    return grid.repeat(k, 0).repeat(k, 1) if k > 1 else grid


def picture(name: str, samples: torch.Tensor, real: torch.Tensor, real_labels: torch.Tensor | None, n_classes: int):
    """The card's picture of ``zoo:NAME``: the first samples next to matching real images."""
    nrow, count = LAYOUT[name]
    count = min(count, len(samples))
    return side_by_side(samples[:count], matching_real(real, real_labels, count, n_classes), nrow=nrow, height=400)


__all__ = ["LAYOUT", "matching_real", "picture", "side_by_side"]
