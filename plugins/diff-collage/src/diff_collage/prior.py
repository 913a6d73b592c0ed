"""The collage prior: a diffcore prior on a large canvas made from a prior on small windows.

:func:`collage` builds it; its ``predict`` gathers every window of the canvas, runs the window
prior on all of them in batched calls (``max_batch`` bounds one call's batch), and combines the
predictions by the chosen method:

- ``"diffcollage"``: :mod:`diff_collage.diffcollage`, the score of the factor graph (windows plus
  counted separators), with separators from :mod:`diff_collage.separators`;
- ``"multidiffusion"``: :mod:`diff_collage.multidiffusion`, the per-cell average;
- ``"mixture"``: :mod:`diff_collage.mixture`, Gaussian-weighted tile blending.

Because the result is a prior, every diffcore sampler and every inverse-problem solver runs on it
unchanged. ``calls`` counts the network calls made through it (sequential calls: each is one
batch); the number per step does not depend on the canvas size unless ``max_batch`` splits it.
"""

from __future__ import annotations

import torch

from diff_collage import diffcollage, mixture, multidiffusion
from diff_collage.conds import same_cond, slice_cond, stack_conds
from diff_collage.graphs import Graph
from diff_collage.layout import Layout
from diff_collage.separators import STRATEGIES, SeparatorPredictor
from diffcore.conversions import eps_to_x0
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.priors import Guided, PriorWrapper
from diffcore.protocols import Cond, Prediction, check_cond

METHODS = ("diffcollage", "multidiffusion", "mixture")


def _clip_range(clip_x0, prior) -> float | None:
    """``clip_x0`` as a range: None follows the window prior (one that clips its x0, ``consistent``
    False, is clipped to diffcore's image range [-1, 1]), True is 1, False none, a number r is [-r, r]."""
    if clip_x0 is None:
        return None if prior.consistent else 1.0
    if isinstance(clip_x0, bool):
        return 1.0 if clip_x0 else None
    if not isinstance(clip_x0, (int, float)) or not clip_x0 > 0:
        raise DiffcoreError(f"clip_x0 must be None (as the window prior), True, False or a positive range, got {clip_x0!r}")
    return float(clip_x0)


def _tile_time(t, reps: int):
    return t.repeat(reps) if isinstance(t, torch.Tensor) and t.ndim == 1 else t


class CollagePrior(PriorWrapper):
    """A prior on the canvas of ``graph`` from the window prior ``prior``; see :func:`collage`."""

    changes_distribution = True

    def __init__(
        self,
        prior,
        graph: Graph,
        *,
        separator_prior=None,
        separator: str = "crop",
        separator_steps: int = 1,
        method: str = "diffcollage",
        max_batch: int | None = None,
        conds=None,
        mixture_sigma: float = 0.1,
        clip_x0: bool | float | None = None,
    ):
        super().__init__(prior)
        if not isinstance(graph, Graph):
            raise DiffcoreError(f"graph must be a diff_collage.graphs.Graph (chain, cycle, grid, tree, load), got {type(graph).__name__}")
        if method not in METHODS:
            raise DiffcoreError(f"unknown collage method {method!r}; use one of {', '.join(METHODS)}")
        if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
            raise DiffcoreError(f"max_batch must be a positive integer or None, got {max_batch!r}")
        self.graph, self.method, self.max_batch = graph, method, max_batch
        self.layout = Layout(graph, tuple(prior.sample_shape))
        self.sample_shape = self.layout.canvas_shape
        self.calls = 0
        self.conds = self._check_conds(conds)
        if self.conds is not None:  # the conditions are fixed, window by window
            self.accepts, self.null_cond = frozenset(), Cond()
        self.separator_conds = self._separator_conds() if self.conds is not None else None
        self.separators = None
        if method == "diffcollage":
            self.separators = SeparatorPredictor(
                self.layout, prior, separator_prior=separator_prior, strategy=separator, steps=separator_steps
            )
        elif separator_prior is not None:
            raise DiffcoreError(f"separator_prior is for method 'diffcollage'; {method} uses no separators")
        elif separator not in STRATEGIES:
            raise DiffcoreError(f"unknown separator strategy {separator!r}; use {' or '.join(STRATEGIES)}")
        self.weights = mixture.tile_weights(self.layout, mixture_sigma) if method == "mixture" else None
        self.clip_x0 = _clip_range(clip_x0, prior)
        if prior.latent is not None:
            from diff_collage.latent import TiledLatent

            self.latent = TiledLatent(prior.latent, self.layout, max_batch=max_batch)
            self.image_shape = self.latent.image_shape()
        else:
            self.image_shape = self.sample_shape

    def __repr__(self) -> str:
        return (
            f"CollagePrior({self.method}, {self.graph.kind} of {self.graph.n_windows} windows, canvas {self.sample_shape}, window prior "
            f"{self.prior!r})"
        )

    # -- conditions ---------------------------------------------------------------------------
    def _check_conds(self, conds):
        if conds is None:
            return None
        conds = list(conds)
        if len(conds) != self.graph.n_windows:
            raise DiffcoreError(
                f"{len(conds)} conditions for a graph of {self.graph.n_windows} windows: give one per window (diff_collage.segments "
                "spreads fewer)"
            )
        for c in conds:
            if not isinstance(c, Cond):
                raise DiffcoreError(f"each window's condition must be a diffcore.Cond, got {type(c).__name__}")
            check_cond(type(self.prior).__name__, self.prior.accepts, c)
        guided_by_embedding = isinstance(self.prior, Guided) and isinstance(self.prior.uncond.text, torch.Tensor)
        if guided_by_embedding and any(isinstance(c.text, (str, list, tuple)) for c in conds):
            raise DiffcoreError(
                "a guided prior's negative prompt is an embedding, so each window's prompt must be one too: "
                "Cond(text=sd.encode_text('...')) with sd the unguided prior (or use the unguided prior with prompts)"
            )
        return conds

    def _separator_conds(self) -> list:
        """A separator shared by windows with one condition takes it; one between windows with
        different conditions takes the window prior's unconditional model (``null_cond``; the
        empty prompt where the windows' prompts are strings, so the batch stays one kind)."""
        out = []
        for s in self.layout.separators:
            first = self.conds[s.windows[0]]
            if all(same_cond(first, self.conds[w]) for w in s.windows[1:]):
                out.append(first)
            elif self.prior.null_cond is None:
                raise DiffcoreError(
                    f"windows {s.windows} overlap with different conditions and the window prior has no unconditional model for the overlap"
                )
            elif isinstance(first.text, str) and first.given() == frozenset({"text"}):
                out.append(Cond(text=""))
            else:
                out.append(self.prior.null_cond)
        return out

    # -- the network ---------------------------------------------------------------------------
    def _run(self, prior, x, t, cond) -> Prediction:
        """``prior.predict`` in calls of at most ``max_batch`` samples, each counted in ``calls``."""
        total = x.shape[0]
        step = self.max_batch or total
        x0, eps = [], []
        for i in range(0, total, step):
            j = min(total, i + step)
            ti = t[i:j] if isinstance(t, torch.Tensor) and t.ndim == 1 else t
            pred = prior.predict(x[i:j], ti, slice_cond(cond, i, j))
            self.calls += 1
            x0.append(pred.x0)
            eps.append(pred.eps)
        return Prediction(x0=torch.cat(x0), eps=torch.cat(eps))

    def _coefficients(self, t, x_t):
        t64 = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
        if t64.ndim > 1 or (t64.ndim == 1 and t64.shape[0] != x_t.shape[0]):
            raise DiffcoreError(f"t has shape {tuple(t64.shape)}; expected a scalar or ({x_t.shape[0]},) to match x_t")
        alpha, sigma = self.schedule.alpha(t64).to(x_t.dtype), self.schedule.sigma(t64).to(x_t.dtype)
        if t64.ndim == 1:
            alpha, sigma = alpha.to(x_t.device), sigma.to(x_t.device)
        return alpha, sigma

    def predict(self, x_t: torch.Tensor, t, cond: Cond | None = None) -> Prediction:
        lay = self.layout
        if not isinstance(x_t, torch.Tensor) or tuple(x_t.shape[1:]) != lay.canvas_shape:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ShapeError(f"x_t has shape {shape}; expected (N, {', '.join(map(str, lay.canvas_shape))}), the collage's canvas")
        check_cond("collage", self.accepts, cond)
        n, nw = x_t.shape[0], lay.n_windows
        alpha, sigma = self._coefficients(t, x_t)
        if self.conds is not None:
            window_conds, sep_conds = self.conds, self.separator_conds
        else:
            call = cond if cond is not None and cond.given() else None
            window_conds, sep_conds = [call] * nw, [call] * len(lay.separators)
        flat = x_t.reshape(n, -1)
        windows = lay.windows(flat).reshape(nw * n, *lay.window_shape)
        pred = self._run(self.prior, windows, _tile_time(t, nw), stack_conds(window_conds, n))
        x0_w, eps_w = pred.x0.reshape(nw, n, -1), pred.eps.reshape(nw, n, -1)
        if self.method == "multidiffusion":
            x0, eps = multidiffusion.average(lay, x0_w, eps_w)
        elif self.method == "mixture":
            x0, eps = mixture.blend(lay, self.weights, x0_w, eps_w)
        else:
            seps = self.separators(self._run, flat, t, sep_conds, x0_w, alpha)
            x0, eps = self.canvas_x0(flat, *diffcollage.combine(lay, x0_w, eps_w, seps), alpha, sigma)
        return Prediction(x0=x0.reshape(x_t.shape), eps=eps.reshape(x_t.shape))

    def canvas_x0(self, flat, x0, eps, alpha, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """DiffCollage's ``x0`` on the canvas: derived from the combined ``eps`` (the combined score),
        then clipped to ``[-clip_x0, clip_x0]`` where ``clip_x0`` is set.

        ``x0`` (the windows' and separators' ``x0`` summed with the counting numbers) is not used:
        when the window prior clips its ``x0``, that sum of clipped estimates no longer cancels
        (the clip is not linear) and drives the canvas's contrast up (docs/collage.md, "The
        clipped x0"); the clip belongs after the combination, as for one window.
        """
        out = eps_to_x0(flat, eps, alpha, sigma)
        if self.clip_x0 is not None:
            out = out.clamp(-self.clip_x0, self.clip_x0)
        return out, eps


def collage(
    window_prior,
    graph: Graph,
    *,
    separator_prior=None,
    method: str = "diffcollage",
    max_batch: int | None = None,
    conds=None,
    separator: str = "crop",
    separator_steps: int = 1,
    mixture_sigma: float = 0.1,
    clip_x0: bool | float | None = None,
) -> CollagePrior:
    """A prior on the large canvas of ``graph`` made from ``window_prior`` (a prior on one window).

    Args:
        window_prior: any diffcore prior; the graph's windows must have its ``sample_shape`` along
            the axes they cut (a latent prior's windows are in latent cells).
        graph: from :mod:`diff_collage.graphs`: ``chain``, ``cycle``, ``grid``, ``tree`` or ``load``.
        method: ``"diffcollage"`` (Zhang et al. 2023: windows' eps summed, separators' subtracted),
            ``"multidiffusion"`` (Bar-Tal et al. 2023: per-cell average) or ``"mixture"`` (Jiménez
            2023: Gaussian-weighted blend, width ``mixture_sigma`` of the window).
        separator_prior: a prior on the overlaps (or a mapping from overlap shape to prior); by
            default derived from the window prior by ``separator``: ``"crop"`` (the window prior
            asked about the overlap's shape: fully convolutional networks, exact for stationary
            content) or ``"mode"`` (any prior, also one of fixed shape; exact for Gaussians as
            ``separator_steps`` grows). See :mod:`diff_collage.separators`.
        max_batch: the most samples in one network call (None: all windows in one call).
        conds: one :class:`~diffcore.Cond` per window (a class, a prompt per window; for a chain the
            segment prompts, :func:`diff_collage.segments`); the collage then takes no condition.
        clip_x0: DiffCollage's canvas ``x0`` is derived from the combined ``eps`` and clipped to
            ``[-clip_x0, clip_x0]``; None (the default) clips to [-1, 1] exactly when the window
            prior clips its own ``x0`` (``consistent`` False, as the zoo's networks), False never.
            MultiDiffusion and the mixture average the windows' ``x0`` (a convex combination stays
            in range) and ignore it.

    >>> import torch, diffcore
    >>> from diff_collage import graphs
    >>> rho = 0.8
    >>> cov = [[rho ** abs(i - j) for j in range(8)] for i in range(8)]
    >>> window = diffcore.priors.GaussianPrior(torch.zeros(8), cov)
    >>> prior = collage(window, graphs.chain(5, 8, 3), separator_prior=window.marginal(range(3)))
    >>> prior.sample_shape
    (28,)
    >>> x = diffcore.sample(prior, 4, steps=10, generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape), prior.calls  # 10 steps, each one call for the windows and one for the separators
    ((4, 28), 20)
    """
    return CollagePrior(
        window_prior,
        graph,
        separator_prior=separator_prior,
        separator=separator,
        separator_steps=separator_steps,
        method=method,
        max_batch=max_batch,
        conds=conds,
        mixture_sigma=mixture_sigma,
        clip_x0=clip_x0,
    )
