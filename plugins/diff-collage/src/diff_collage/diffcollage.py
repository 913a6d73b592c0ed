"""DiffCollage (Zhang, Song, Huang, Chen & Liu, CVPR 2023): the score of a factor graph of windows.

For a distribution that factorises over a tree of windows, ``q(x) = prod_W q(x_W) / prod_R
q(x_R)^(deg R - 1)`` (eq. 4 for a chain: ``log q(x1, x2, x3) = log q(x1, x2) + log q(x2, x3) - log
q(x2)``), so its score is the sum of the windows' scores minus each separator's, counted
``deg - 1`` times (eq. 6). Scores are ``-eps / sigma(t)`` with one ``sigma`` for every window at a
time ``t``, so the sum is taken on the noise predictions: ``eps = sum_W eps_W + sum_R c_R eps_R``
(:mod:`diff_collage.graphs` gives the counting numbers ``c_R``; :mod:`diff_collage.separators` the
separator predictions).

At ``t = 0`` this is the exact score of the tree-factorised data distribution. At ``t > 0`` it is
the score of ``prod_W q_t(x_W) / prod_R q_t(x_R)^(deg - 1)``, the same product of the *noised*
window marginals, which is not the noised joint: adding noise breaks the conditional independence
of the two ends of a window given the overlap (the noised overlap no longer screens them off), so
the sampler follows an approximate path that ends at the right distribution. docs/collage.md
measures the resulting covariance error on an exact Gaussian AR(1) chain. On graphs with loops
(grids, cycles) the counting numbers give a Kikuchi approximation even at ``t = 0``.
"""

from __future__ import annotations

import torch


def combine(layout, x0_w: torch.Tensor, eps_w: torch.Tensor, separators) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows ``(n_windows, N, P)`` plus the separators' cells ``(canvas index (M,), count (M,),
    x0 (M, N), eps (M, N))`` -> ``sum_W pred_W + sum_R c_R pred_R`` on the canvas ``(N, numel)``."""
    canvas, count, x0_s, eps_s = separators
    out = []
    for win, sep in ((x0_w, x0_s), (eps_w, eps_s)):
        total = layout.add_windows(win)
        if canvas.numel():
            total = total.index_add(1, canvas, (sep * count[:, None].to(sep.dtype)).transpose(0, 1))
        out.append(total)
    return out[0], out[1]
