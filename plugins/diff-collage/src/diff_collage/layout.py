"""A graph placed on a window prior's sample shape: flat indices for gathering windows from the canvas
and scattering their predictions back, in one tensor operation each.

The canvas of ``N`` samples is handled flat, ``(N, numel)``; window ``i`` is ``flat[:, window_index[i]]``
(its cells in the window's own row-major order), so gathering every window is one indexing and
summing their contributions back one ``index_add_``, whatever the number of windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diff_collage.graphs import Graph
from diffcore.errors import DiffcoreError


def _flat_index(per_axis: list[torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    """Flat row-major indices into ``shape`` of the product of ``per_axis`` index vectors."""
    strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]
    out = torch.zeros((), dtype=torch.long)
    for d, ix in enumerate(per_axis):
        view = [1] * len(shape)
        view[d] = -1
        out = out + ix.reshape(view) * strides[d]
    return out.reshape(-1)


@dataclass(frozen=True)
class SeparatorIndex:
    """One separator region on the canvas: its cells (``canvas``, flat, in the parent window's
    order), where they sit inside the parent window (``positions``, flat), its shape as a sample
    of its own (``shape``), its counting number and windows, and whether it is a box in the parent
    (contiguous along every cut axis: a sample a prior can be asked about)."""

    canvas: torch.Tensor
    positions: torch.Tensor
    shape: tuple[int, ...]
    count: int
    windows: tuple[int, ...]
    box: bool

    @property
    def parent(self) -> int:
        return self.windows[0]


class Layout:
    """``graph`` on windows of ``window_shape`` (the window prior's ``sample_shape``).

    A cut axis whose window length is not the prior's is a one-line error ("a window the prior
    cannot take"). ``canvas_shape`` is the collage's sample shape.
    """

    def __init__(self, graph: Graph, window_shape: tuple[int, ...]):
        window_shape = tuple(int(s) for s in window_shape)
        ndim = len(window_shape)
        self.graph = graph
        self.window_shape = window_shape
        self.axes = []
        for a, s in zip(graph.axes, graph.size):
            if a < -ndim:
                raise DiffcoreError(f"the graph cuts axis {a}, but the window prior's samples {window_shape} have only {ndim} axes")
            if window_shape[a] != s:
                raise DiffcoreError(
                    f"the window prior takes samples of shape {window_shape}, {window_shape[a]} long along axis {a}; "
                    f"the graph's windows are {s} long there: a window this prior cannot take"
                )
            self.axes.append(ndim + a)
        canvas = list(window_shape)
        for d, n in zip(self.axes, graph.length):
            canvas[d] = n
        self.canvas_shape = tuple(canvas)
        self.numel = math.prod(self.canvas_shape)
        self.window_numel = math.prod(window_shape)
        self.window_index = torch.stack([self._index(graph.window_indices(i)) for i in range(graph.n_windows)])
        self.coverage = torch.zeros(self.numel, dtype=torch.long).index_add_(
            0, self.window_index.reshape(-1), torch.ones(self.window_index.numel(), dtype=torch.long)
        )
        self.separators = tuple(self._separator(s) for s in graph.separators)
        self._on: dict = {}

    @property
    def n_windows(self) -> int:
        return self.window_index.shape[0]

    def _per_axis(self, cut: tuple[tuple[int, ...], ...], shape) -> list[torch.Tensor]:
        per_axis = [torch.arange(n) for n in shape]
        for d, ix in zip(self.axes, cut):
            per_axis[d] = torch.tensor(ix, dtype=torch.long)
        return per_axis

    def _index(self, cut) -> torch.Tensor:
        return _flat_index(self._per_axis(cut, self.canvas_shape), self.canvas_shape)

    def _separator(self, sep) -> SeparatorIndex:
        g, p = self.graph, sep.parent
        inside, box = [], True
        for ix, o, n, w in zip(sep.indices, g.starts[p], g.length, g.wrap):
            pos = [(c - o) % n if w else c - o for c in ix]
            box = box and pos == list(range(pos[0], pos[0] + len(pos)))
            inside.append(tuple(pos))
        shape = list(self.window_shape)
        for d, ix in zip(self.axes, sep.indices):
            shape[d] = len(ix)
        return SeparatorIndex(
            canvas=self._index(sep.indices),
            positions=_flat_index(self._per_axis(tuple(inside), self.window_shape), self.window_shape),
            shape=tuple(shape),
            count=sep.count,
            windows=sep.windows,
            box=box,
        )

    # -- gather and scatter -------------------------------------------------------------------
    def on(self, device) -> dict[str, torch.Tensor]:
        """The index tensors on ``device`` (moved once per device)."""
        device = torch.device(device)
        key = str(device)
        if key not in self._on:
            self._on[key] = {"window": self.window_index.to(device), "coverage": self.coverage.to(device)}
        return self._on[key]

    def windows(self, flat: torch.Tensor) -> torch.Tensor:
        """``(N, numel)`` canvas -> ``(n_windows, N, window_numel)``."""
        return flat[:, self.on(flat.device)["window"]].transpose(0, 1)

    def add_windows(self, values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``sum_i weights_i * values_i`` scattered onto the canvas: ``(n_windows, N, P)`` -> ``(N, numel)``."""
        n = values.shape[1]
        if weights is not None:
            values = values * weights[:, None, :]
        src = values.transpose(0, 1).reshape(n, -1)
        out = torch.zeros(n, self.numel, dtype=values.dtype, device=values.device)
        return out.index_add(1, self.on(values.device)["window"].reshape(-1), src)
