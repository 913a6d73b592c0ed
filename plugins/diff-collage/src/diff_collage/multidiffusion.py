"""MultiDiffusion (Bar-Tal, Yariv, Lipman & Dekel, ICML 2023): every cell takes the average of the
predictions of the windows that cover it.

Eq. 5 of the paper fuses the windows' next states by least squares; with uniform weights its
closed form (eq. 7) is the per-cell mean of the windows' denoised states. For a step that is
linear in the prediction at a fixed ``x_t`` (DDIM, the mean of an ancestral step), averaging the
windows' ``(x0, eps)`` and taking one step is the same as stepping each window and averaging, so
the collage prior returns the averaged prediction and any sampler takes the step.
"""

from __future__ import annotations

import torch


def average(layout, x0_w: torch.Tensor, eps_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Window predictions ``(n_windows, N, P)`` -> their per-cell means on the canvas ``(N, numel)``."""
    coverage = layout.on(eps_w.device)["coverage"].to(eps_w.dtype)
    return layout.add_windows(x0_w) / coverage, layout.add_windows(eps_w) / coverage
