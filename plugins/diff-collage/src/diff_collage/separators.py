"""Separator predictions: the score of the marginal on each overlap region, from a given prior or
derived from the window prior.

DiffCollage needs ``grad log q_t(x_R)`` on each separator region ``R``. Three ways to get it:

- **given** (``separator_prior=``): a prior on the overlap's shape (or a mapping from shape to
  prior), e.g. :meth:`~diffcore.priors.GaussianMixturePrior.marginal` of a Gaussian window prior,
  or a network trained on crops of the overlap's size. Exact where that prior is.
- **crop** (the default): the window prior itself asked about the overlap's shape. For content
  whose statistics do not depend on position (textures, photo patches, panoramas) the marginal of
  an overlap is the law of any crop of that shape, which a fully convolutional network trained on
  random crops (the zoo's textures and patches, Stable Diffusion's UNet) models when given a
  smaller input; the approximation is the network's: a strip much narrower than its training
  crops is outside what it saw (the overlaps of a half-window overlap do well, docs/collage.md).
  A prior that takes only its own shape (a Gaussian) cannot be asked: that is a one-line error.
- **mode**: the window prior on a parent window whose cells outside ``R`` are filled with the
  point where its score with respect to them vanishes. This replaces the marginal ``q_t(x_R) =
  int q_t(x_R, x_rest) dx_rest`` by its Laplace (profile) approximation ``max_rest q_t(x_R,
  x_rest)``, whose gradient is, by the envelope theorem, the window's score on ``R`` at that
  maximiser; exact when ``q_t`` is Gaussian (the Hessian does not depend on ``x_R``). The
  maximiser solves ``eps_rest(x) = 0``, i.e. ``x_rest = alpha(t) x0_hat_rest(x)``: a fixed-point
  iteration started from the parent window's own ``alpha x0_hat`` of this step, one batched call
  per iteration (``steps``), which converges slowly at low noise (docs/collage.md measures K = 1,
  2, 4 against the exact marginal on a Gaussian AR(1) chain). It works for any prior, also one of
  fixed shape, but the noise-free fill is far from what a network saw in training: on the zoo's
  networks it is unstable without their x0 clipping.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from diff_collage.conds import stack_conds
from diffcore.errors import DiffcoreError

STRATEGIES = ("crop", "mode")


class SeparatorPredictor:
    """Predicts ``(x0, eps)`` on every separator cell, batched: ``__call__`` returns the cells' flat
    canvas indices ``(M,)``, their counting numbers ``(M,)`` and the predictions ``(M, N)``.

    ``run(prior, x, t, cond)`` is the collage's counted network call; ``conds`` one condition per
    separator (or None for none).
    """

    def __init__(self, layout, window_prior, *, separator_prior=None, strategy: str = "crop", steps: int = 1):
        if strategy not in STRATEGIES:
            raise DiffcoreError(f"unknown separator strategy {strategy!r}; use {' or '.join(STRATEGIES)} (or give separator_prior)")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise DiffcoreError(f"separator_steps must be an integer >= 1, got {steps!r}")
        self.layout, self.window_prior, self.steps = layout, window_prior, steps
        self.strategy = "given" if separator_prior is not None else strategy
        self.separator_prior = separator_prior
        seps = layout.separators
        if self.strategy != "mode":
            for s in seps:
                if not s.box:
                    raise DiffcoreError(
                        f"the overlap of windows {s.windows} is not a box (a short cycle's overlap in two pieces); "
                        "a prior cannot be asked about it: use separator='mode'"
                    )
            if isinstance(separator_prior, Mapping):
                missing = sorted({s.shape for s in seps} - {tuple(k) for k in separator_prior})
                if missing:
                    raise DiffcoreError(
                        f"separator_prior has no prior for separator shape(s) {missing}; it has {sorted(tuple(k) for k in separator_prior)}"
                    )
        # flat selections: separator r's cells, in the order the predictions come back
        rows, pos, canvas, count = [], [], [], []
        for r, s in enumerate(seps):
            rows.append(torch.full_like(s.positions, r))
            pos.append(s.positions)
            canvas.append(s.canvas)
            count.append(torch.full_like(s.positions, s.count))
        cat = (lambda xs: torch.cat(xs)) if seps else (lambda xs: torch.zeros(0, dtype=torch.long))
        self.rows, self.positions, self.canvas, self.count = cat(rows), cat(pos), cat(canvas), cat(count)
        self.parents = torch.tensor([s.parent for s in seps], dtype=torch.long)
        self.groups: dict[tuple, list[int]] = {}
        for r, s in enumerate(seps):
            self.groups.setdefault(s.shape, []).append(r)
        self._on: dict = {}

    def _prior_for(self, shape):
        if self.strategy == "crop":
            return self.window_prior
        if isinstance(self.separator_prior, Mapping):
            return {tuple(k): v for k, v in self.separator_prior.items()}[tuple(shape)]
        return self.separator_prior

    def on(self, device):
        key = str(device)
        if key not in self._on:
            self._on[key] = {k: getattr(self, k).to(device) for k in ("rows", "positions", "canvas", "count", "parents")}
        return self._on[key]

    def __call__(self, run, flat, t, conds, x0_w, alpha):
        idx = self.on(flat.device)
        n = flat.shape[0]
        if len(self.layout.separators) == 0:
            empty = flat.new_zeros(0, n)
            return idx["canvas"], idx["count"], empty, empty
        if self.strategy == "mode":
            x0, eps = self._mode(run, flat, t, conds, x0_w, alpha, idx)
        else:
            x0, eps = self._crop(run, flat, t, conds, idx)
        return idx["canvas"], idx["count"], x0, eps

    def _mode(self, run, flat, t, conds, x0_w, alpha, idx):
        lay = self.layout
        S, n, P = len(lay.separators), flat.shape[0], lay.window_numel
        a = alpha.reshape(1, -1, 1) if alpha.ndim == 1 else alpha
        known = flat[:, idx["canvas"]].transpose(0, 1)  # (M, N): x_t on the separator cells
        cells = idx["rows"] * P + idx["positions"]
        cond = stack_conds(conds, n)
        ts = t.repeat(S) if isinstance(t, torch.Tensor) and t.ndim == 1 else t
        fill = a * x0_w[idx["parents"]]  # (S, N, P): the parent's own alpha x0_hat
        for _ in range(self.steps):
            inputs = fill.transpose(1, 2).reshape(S * P, n).index_copy(0, cells, known)
            inputs = inputs.reshape(S, P, n).transpose(1, 2).reshape(S * n, *lay.window_shape)
            pred = run(self.window_prior, inputs, ts, cond)
            x0_s = pred.x0.reshape(S, n, P)
            fill = a * x0_s
        eps_s = pred.eps.reshape(S, n, P)
        pick = lambda v: v.transpose(1, 2).reshape(S * P, n)[cells]  # noqa: E731
        return pick(x0_s), pick(eps_s)

    def _crop(self, run, flat, t, conds, idx):
        lay = self.layout
        n = flat.shape[0]
        x0_parts, eps_parts = [None] * len(lay.separators), [None] * len(lay.separators)
        for shape, members in self.groups.items():
            cells = torch.stack([lay.separators[r].canvas for r in members]).to(flat.device)  # (G, P_R)
            g = len(members)
            x = flat[:, cells].permute(1, 0, 2).reshape(g * n, *shape)
            ts = t.repeat(g) if isinstance(t, torch.Tensor) and t.ndim == 1 else t
            try:
                pred = run(self._prior_for(shape), x, ts, stack_conds([conds[r] for r in members], n))
            except (DiffcoreError, RuntimeError) as exc:
                if self.strategy != "crop":
                    raise
                raise DiffcoreError(
                    f"the window prior cannot predict on the overlap's shape {shape} ({str(exc).splitlines()[0]}); "
                    "use separator='mode' or give separator_prior"
                ) from exc
            x0, eps = pred.x0.reshape(g, n, -1), pred.eps.reshape(g, n, -1)
            for k, r in enumerate(members):
                x0_parts[r], eps_parts[r] = x0[k].transpose(0, 1), eps[k].transpose(0, 1)
        return torch.cat(x0_parts), torch.cat(eps_parts)
