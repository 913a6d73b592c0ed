"""Sequential outpainting, the baseline DiffCollage replaces: windows generated one after another,
each conditioned on what already exists by replacement.

Window ``k`` is sampled from the window prior with the cells that earlier windows already made
held fixed, as RePaint (Lugmayr et al., CVPR 2022) does without its resampling jumps: on those
cells the prediction is the known content (``x0`` = the known pixels, ``eps`` the noise that
``x_t`` carries there), so every step of any sampler moves them along the forward process from
the known content, and the network sees, at every step, the known overlap diffused to the
current time next to the cells it is making. The cost is ``windows x steps`` sequential network
calls, against ``steps`` (times a constant) for a collage prior.
"""

from __future__ import annotations

import torch

from diff_collage.conds import stack_conds
from diff_collage.graphs import Graph
from diff_collage.layout import Layout
from diffcore.conversions import x0_to_eps
from diffcore.errors import DiffcoreError
from diffcore.priors import PriorWrapper
from diffcore.protocols import Cond, Prediction


class KnownCells(PriorWrapper):
    """``prior`` with the cells where ``mask`` is True known to be ``known`` (a batch of samples)."""

    changes_distribution = True

    def __init__(self, prior, known: torch.Tensor, mask: torch.Tensor):
        super().__init__(prior)
        self.known, self.mask = known, mask

    def predict(self, x_t, t, cond=None) -> Prediction:
        pred = self.prior.predict(x_t, t, cond)
        if not bool(self.mask.any()):
            return pred
        t64 = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
        alpha, sigma = self.schedule.alpha(t64).to(x_t.dtype), self.schedule.sigma(t64).to(x_t.dtype)
        if t64.ndim == 1:
            alpha, sigma = alpha.to(x_t.device), sigma.to(x_t.device)
        known = self.known.to(x_t.dtype)
        return Prediction(
            x0=torch.where(self.mask, known, pred.x0),
            eps=torch.where(self.mask, x0_to_eps(x_t, known, alpha, sigma), pred.eps),
        )


def outpaint(
    window_prior,
    graph: Graph,
    *,
    n: int = 1,
    steps: int,
    sampler: str = "ddim",
    generator: torch.Generator | None = None,
    cond: Cond | None = None,
    conds=None,
    decode: bool = True,
    device=None,
    dtype=torch.float32,
    max_batch: int | None = None,
    callback=None,
    **sampler_options,
) -> torch.Tensor:
    """``n`` canvases of ``graph`` made window after window (in ``graph.order()``) with ``sampler``.

    ``cond`` is used for every window, or ``conds`` gives one per window. A latent prior's canvas is
    decoded in tiles (:class:`~diff_collage.latent.TiledLatent`) unless ``decode=False``.
    ``callback(window, calls)`` runs after each window with the number of network calls so far.

    >>> import torch, diffcore
    >>> from diff_collage import graphs
    >>> window = diffcore.priors.GaussianPrior(torch.zeros(8))
    >>> x = outpaint(window, graphs.chain(3, 8, 2), n=2, steps=5, generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape)
    (2, 20)
    """
    from diffcore.samplers import get_sampler, initial_noise

    layout = Layout(graph, tuple(window_prior.sample_shape))
    if conds is not None:
        conds = list(conds)
        if len(conds) != graph.n_windows:
            raise DiffcoreError(f"{len(conds)} conditions for a graph of {graph.n_windows} windows: give one per window")
    if not isinstance(n, int) or n < 1:
        raise DiffcoreError(f"n must be a positive integer, got {n!r}")
    fn = get_sampler(sampler, **sampler_options)
    ts = window_prior.schedule.timesteps(steps)
    device = torch.device(device) if device is not None else torch.device(window_prior.device)
    canvas = torch.zeros(n, layout.numel, dtype=dtype, device=device)
    known = torch.zeros(layout.numel, dtype=torch.bool, device=device)
    index = layout.on(device)["window"]
    calls = 0
    for w in graph.order():
        cells = index[w]
        mask = known[cells].reshape(1, *layout.window_shape)
        wrapped = KnownCells(window_prior, canvas[:, cells].reshape(n, *layout.window_shape), mask)
        c = stack_conds([conds[w]], n) if conds is not None else cond
        x = initial_noise(window_prior, n, ts[0], generator=generator, device=device, dtype=dtype, start="normal")
        x0 = fn(wrapped, x, ts, cond=c, generator=generator)
        canvas[:, cells] = x0.reshape(n, -1).to(dtype)
        known[cells] = True
        calls += len(ts) - 1
        if callback is not None:
            callback(w, calls)
    out = canvas.reshape(n, *layout.canvas_shape)
    if decode and window_prior.latent is not None:
        from diff_collage.latent import TiledLatent

        with torch.no_grad():
            out = TiledLatent(window_prior.latent, layout, max_batch=max_batch).decode(out)
    return out
