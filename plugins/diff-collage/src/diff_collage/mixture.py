"""Mixture of Diffusers (Jiménez, 2023): tiles blended with Gaussian weights.

Each window's prediction is weighted, cell by cell, by a Gaussian centred on the window,
``w(u) = prod_axes exp(-(u_a - c_a)^2 / (2 (sigma L_a)^2))`` over the cut axes (``c_a`` the
window's centre, ``L_a`` its length, ``sigma = 0.1`` by default: the paper's variance 0.01 in
units of the tile), and the canvas takes ``sum_i w_i pred_i / sum_i w_i``, so each cell follows
mostly the windows in whose middle it lies.
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError


def tile_weights(layout, sigma: float = 0.1) -> torch.Tensor:
    """The Gaussian weight of each cell of a window, flat ``(P,)`` in the window's order."""
    if not sigma > 0:
        raise DiffcoreError(f"the mixture's sigma (relative to the window) must be positive, got {sigma}")
    w = torch.ones(layout.window_shape, dtype=torch.float64)
    for d in layout.axes:
        n = layout.window_shape[d]
        u = torch.arange(n, dtype=torch.float64)
        g = torch.exp(-0.5 * ((u - (n - 1) / 2) / (sigma * n)) ** 2)
        view = [1] * len(layout.window_shape)
        view[d] = n
        w = w * g.reshape(view)
    return w.reshape(-1)


def blend(layout, weights: torch.Tensor, x0_w: torch.Tensor, eps_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Window predictions ``(n_windows, N, P)`` -> the Gaussian-weighted blend on the canvas ``(N, numel)``."""
    w = weights.to(device=eps_w.device, dtype=eps_w.dtype).expand(layout.n_windows, -1)
    total = layout.add_windows(torch.ones_like(eps_w[:, :1]), w)
    return layout.add_windows(x0_w, w) / total, layout.add_windows(eps_w, w) / total
