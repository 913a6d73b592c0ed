"""How visible the window borders are: the seam score.

``seam_score = mean over border pairs of |x_p - x_(p-1)|^2 / mean over the other pairs of the
same``, along each axis the windows cut, where the border pairs are the pairs of neighbouring cells
that a window's edge separates (the wrap pair too, on a loop). Content without seams scores about
1 (borders look like anywhere else); a visible seam, a jump in value or texture at the border,
scores above 1; a border blurred over (averaging predictions smooths where windows overlap)
scores below 1.
"""

from __future__ import annotations

import torch

from diff_collage.graphs import Graph
from diffcore.errors import DiffcoreError


def seam_energy(images: torch.Tensor, graph: Graph, *, scale=1) -> tuple[float, float]:
    """The mean squared difference of neighbouring cells across window borders, and elsewhere."""
    x = torch.as_tensor(images).detach().to(torch.float64)
    scales = tuple(scale) if isinstance(scale, (tuple, list)) else (scale,) * len(graph.axes)
    if len(scales) != len(graph.axes) or any(int(f) != f or f < 1 for f in scales):
        raise DiffcoreError(f"scale must be a positive integer or one per cut axis ({len(graph.axes)}), got {scale!r}")
    border_sum = inside_sum = 0.0
    border_n = inside_n = 0
    for a, n, w, positions, scale in zip(graph.axes, graph.length, graph.wrap, graph.borders(), scales):
        scale = int(scale)
        d = x.ndim + a
        length = n * scale
        if x.ndim + a < 1 or x.shape[d] != length:
            raise DiffcoreError(
                f"images of shape {tuple(x.shape)} do not have {length} cells along axis {a}, the graph's canvas times {scale}"
            )
        step = torch.diff(x, dim=d) ** 2  # pair (p - 1, p) at index p - 1
        energy = step.movedim(d, 0).reshape(length - 1, -1).mean(1)
        if w:
            wrap = (x.select(d, 0) - x.select(d, length - 1)) ** 2
            energy = torch.cat([wrap.reshape(1, -1).mean(1), energy])  # index p is pair (p - 1, p), 0 the wrap pair
        else:
            energy = torch.cat([energy.new_zeros(1), energy])
        is_border = torch.zeros(length, dtype=torch.bool)
        is_border[[p * scale for p in positions]] = True
        valid = torch.ones(length, dtype=torch.bool)
        if not w:
            valid[0] = False
        border_sum += float(energy[is_border & valid].sum())
        border_n += int((is_border & valid).sum())
        inside_sum += float(energy[~is_border & valid].sum())
        inside_n += int((~is_border & valid).sum())
    if border_n == 0 or inside_n == 0:
        raise DiffcoreError("the graph has no window borders inside the canvas (one window): there is no seam to score")
    return border_sum / border_n, inside_sum / inside_n


def seam_score(images: torch.Tensor, graph: Graph, *, scale=1) -> float:
    """The seam score of canvases ``images`` ``(N, ..., *canvas)`` laid out by ``graph`` (see the module
    docstring); ``scale`` is the pixels per canvas cell of a decoded latent canvas (one number, or
    one per cut axis).

    >>> from diff_collage import graphs
    >>> g = graphs.chain(2, 4, 1)
    >>> steps = torch.tensor([[0.0, 0, 0, 0, 1, 1, 1]])  # a jump at the second window's start
    >>> seam_score(steps, g) > 1
    True
    """
    border, inside = seam_energy(images, graph, scale=scale)
    return border / inside if inside > 0 else float("inf")
