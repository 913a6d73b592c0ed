"""Factor graphs of windows on a canvas: chains, cycles, grids and user trees.

DiffCollage (Zhang et al., CVPR 2023, sec. 3 and Fig. 2) represents large content as a factor
graph: each factor node is a window the window prior can generate, each variable node the region
where windows overlap. A :class:`Graph` says where the windows sit along the sample axes they cut
(``axes``, e.g. ``(-1,)`` for the width of an image or the frames of a video, ``(-2, -1)`` for a
2-D canvas); every other axis is the window prior's own.

The combined log density is ``sum_windows log q(x_W) + sum_R c_R log q(x_R)`` over the separator
regions ``R`` with counting numbers ``c_R`` chosen so that every canvas cell is counted exactly once:

- a tree given with its edges (:func:`tree`, a JSON file with ``edges``) takes DiffCollage's rule:
  each separator (the overlap of the two windows of an edge) is subtracted ``degree - 1`` times,
  exact for a distribution that factorises along the tree;
- otherwise (:func:`chain`, :func:`cycle`, :func:`grid`, a JSON layout without edges) the regions
  are all the intersections of windows, with the counting numbers of Kikuchi's cluster variation
  method, ``c_R = 1 - sum of c over the regions that contain R``. For a chain whose overlaps are
  at most half a window this is the same as the tree rule (each overlap subtracted once). A grid
  has loops: it subtracts each strip where two neighbours overlap and adds back each corner
  where four meet, so the corner is counted once; a cycle subtracts every overlap, the seam too.
  These are approximations of the joint (see docs/collage.md), exact only on trees.

>>> g = chain(3, 16, 4)
>>> g.length, g.starts, [(s.count, s.windows) for s in g.separators]
((40,), ((0,), (12,), (24,)), [(-1, (0, 1)), (-1, (1, 2))])
>>> [s.count for s in grid(2, 2, 8, 2).separators]
[-1, -1, -1, -1, 1]
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from diffcore.errors import DiffcoreError


@dataclass(frozen=True)
class Separator:
    """A region where windows overlap, with its counting number.

    ``indices``: the canvas coordinates along each cut axis, in the order they have inside the
    parent window (``windows[0]``); ``count``: how many times its score is added (negative:
    subtracted); ``windows``: the windows that contain it.
    """

    indices: tuple[tuple[int, ...], ...]
    count: int
    windows: tuple[int, ...]

    @property
    def parent(self) -> int:
        return self.windows[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """Its length along each cut axis."""
        return tuple(len(ix) for ix in self.indices)


def _ints(name: str, value, length: int | None = None) -> tuple[int, ...]:
    values = (value,) * (length or 1) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        out = tuple(int(v) for v in values)
        ok = all(not isinstance(v, bool) and int(v) == v for v in values)
    except (TypeError, ValueError):
        ok = False
    if not ok or (length is not None and len(out) != length):
        want = "an integer" if length in (None, 1) else f"an integer or {length} integers"
        raise DiffcoreError(f"{name} must be {want}, got {value!r}")
    return out


@dataclass(frozen=True)
class Graph:
    """Windows of one size on a canvas, along the sample axes ``axes`` (see the module docstring).

    ``size``, ``length`` and ``wrap`` give, per cut axis, the window's length, the canvas's
    length and whether the canvas wraps around (a loop, a 360° panorama); ``starts`` the offset
    of each window; ``edges`` the edges of a tree (None: counting by intersections); ``kind``
    and ``grid_shape`` (rows, cols) describe how it was built. Invalid graphs raise a one-line
    :class:`~diffcore.errors.DiffcoreError` when built.
    """

    kind: str
    axes: tuple[int, ...]
    size: tuple[int, ...]
    length: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]
    wrap: tuple[bool, ...]
    edges: tuple[tuple[int, int], ...] | None = None
    grid_shape: tuple[int, int] | None = None
    _separators: list = field(default_factory=list, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        k = len(self.axes)
        if k == 0 or not (len(self.size) == len(self.length) == len(self.wrap) == k):
            raise DiffcoreError("a graph needs, for each cut axis, a window size, a canvas length and whether it wraps")
        if len(set(self.axes)) != k or any(a >= 0 for a in self.axes):
            raise DiffcoreError(f"cut axes must be distinct negative sample axes (-1 is the last), got {self.axes}")
        for a, s, n in zip(self.axes, self.size, self.length):
            if s < 1:
                raise DiffcoreError(f"the window size along axis {a} must be at least 1, got {s}")
            if n < s:
                raise DiffcoreError(f"the canvas ({n} along axis {a}) is shorter than one window ({s})")
        if not self.starts:
            raise DiffcoreError("a graph needs at least one window")
        for i, st in enumerate(self.starts):
            if len(st) != k:
                raise DiffcoreError(f"window {i} has {len(st)} offsets; expected {k}, one per cut axis")
            for a, s, n, w, o in zip(self.axes, self.size, self.length, self.wrap, st):
                if o < 0 or (o + s > n if not w else o >= n):
                    raise DiffcoreError(
                        f"window {i} at offset {o} along axis {a} lies outside the canvas (length {n}, window "
                        f"{s}{', wrapping' if w else ''})"
                    )
        if len(set(self.starts)) != len(self.starts):
            raise DiffcoreError("two windows sit at the same place")
        sets = [self._cells(i) for i in range(len(self.starts))]
        for i in range(len(sets)):
            for j in range(len(sets)):
                if i != j and all(a <= b for a, b in zip(sets[i], sets[j])):
                    raise DiffcoreError(f"window {i} lies inside window {j}: an overlap must be smaller than the window")
        self._check_coverage()
        if self.edges is not None:
            self._check_tree()
        self._separators.extend(self._tree_separators() if self.edges is not None else self._closure_separators())
        self._check_counts()

    # -- geometry -----------------------------------------------------------------------------
    @property
    def n_windows(self) -> int:
        return len(self.starts)

    def window_indices(self, i: int) -> tuple[tuple[int, ...], ...]:
        """The canvas coordinates window ``i`` covers along each cut axis, in window order."""
        return tuple(
            tuple((o + j) % n if w else o + j for j in range(s)) for o, s, n, w in zip(self.starts[i], self.size, self.length, self.wrap)
        )

    def _cells(self, i: int) -> tuple[frozenset, ...]:
        return tuple(frozenset(ix) for ix in self.window_indices(i))

    @property
    def separators(self) -> tuple[Separator, ...]:
        """The separator regions and their counting numbers (regions counted zero times left out)."""
        return tuple(self._separators)

    def borders(self) -> tuple[tuple[int, ...], ...]:
        """Per cut axis, the positions ``p`` where a window starts or ends: the pairs of cells
        ``(p - 1, p)`` that a window border separates (``p = 0`` is the wrap pair ``(L - 1, 0)``)."""
        out = []
        for k, (s, n, w) in enumerate(zip(self.size, self.length, self.wrap)):
            found = set()
            for st in self.starts:
                for p in (st[k], st[k] + s):
                    p = p % n if w else p
                    if w or 0 < p < n:
                        found.add(p)
            out.append(tuple(sorted(found)))
        return tuple(out)

    def order(self) -> tuple[int, ...]:
        """The order in which sequential outpainting visits the windows: breadth first from window 0
        along a tree's edges, else the order they were given (row by row for a grid)."""
        if self.edges is None:
            return tuple(range(self.n_windows))
        nbrs: dict[int, list[int]] = {i: [] for i in range(self.n_windows)}
        for a, b in self.edges:
            nbrs[a].append(b)
            nbrs[b].append(a)
        seen, queue, out = {0}, deque([0]), []
        while queue:
            i = queue.popleft()
            out.append(i)
            for j in sorted(nbrs[i]):
                if j not in seen:
                    seen.add(j)
                    queue.append(j)
        return tuple(out)

    def scaled(self, factors) -> Graph:
        """The same layout with every length multiplied by ``factors`` (one per cut axis): the
        windows of a latent canvas in image pixels."""
        f = _ints("factors", factors, len(self.axes))
        return Graph(
            self.kind,
            self.axes,
            tuple(s * m for s, m in zip(self.size, f)),
            tuple(n * m for n, m in zip(self.length, f)),
            tuple(tuple(o * m for o, m in zip(st, f)) for st in self.starts),
            self.wrap,
            self.edges,
            self.grid_shape,
        )

    def to_dict(self) -> dict:
        """A JSON-ready description (the format :func:`load` reads)."""
        d = {
            "kind": self.kind,
            "axes": list(self.axes),
            "window": list(self.size),
            "canvas": list(self.length),
            "wrap": list(self.wrap),
            "windows": [list(s) for s in self.starts],
        }
        if self.edges is not None:
            d["edges"] = [list(e) for e in self.edges]
        if self.grid_shape is not None:
            d["grid"] = list(self.grid_shape)
        return d

    # -- checks and counting numbers ----------------------------------------------------------
    def _check_coverage(self):
        covered = set()
        for i in range(self.n_windows):
            covered.update(_product(self.window_indices(i)))
        total = math.prod(self.length)
        if len(covered) != total:
            missing = next(c for c in _product(tuple(tuple(range(n)) for n in self.length)) if c not in covered)
            raise DiffcoreError(
                f"{total - len(covered)} canvas cells are covered by no window (the first at {missing}); move or add windows"
            )

    def _check_tree(self):
        n = self.n_windows
        parent = list(range(n))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        sets = [self._cells(i) for i in range(n)]
        for a, b in self.edges:
            if not (0 <= a < n and 0 <= b < n) or a == b:
                raise DiffcoreError(f"edge ({a}, {b}) must join two different windows among 0..{n - 1}")
            if not all(x & y for x, y in zip(sets[a], sets[b])):
                raise DiffcoreError(f"edge ({a}, {b}) joins windows that do not overlap")
            ra, rb = find(a), find(b)
            if ra == rb:
                raise DiffcoreError(
                    f"the graph is given as a tree but edge ({a}, {b}) closes a cycle; a tree has none (leave out 'edges' for a layout "
                    "with loops)"
                )
            parent[ra] = rb
        if len({find(i) for i in range(n)}) != 1:
            raise DiffcoreError(f"the graph is given as a tree but its {len(self.edges)} edges do not connect all {n} windows")

    def _tree_separators(self) -> list[Separator]:
        sets = [self._cells(i) for i in range(self.n_windows)]
        touching: dict[tuple, set[int]] = {}
        for a, b in self.edges:
            key = tuple(tuple(sorted(x & y)) for x, y in zip(sets[a], sets[b]))
            touching.setdefault(key, set()).update((a, b))
        return [self._separator(key, 1 - len(wins), sets) for key, wins in sorted(touching.items())]

    def _closure_separators(self) -> list[Separator]:
        sets = [self._cells(i) for i in range(self.n_windows)]
        family: dict[tuple, tuple[frozenset, ...]] = {}
        frontier = list(sets)
        while frontier:
            new = []
            for r in frontier:
                for w in sets:
                    inter = tuple(x & y for x, y in zip(r, w))
                    if all(inter):
                        key = tuple(tuple(sorted(x)) for x in inter)
                        if key not in family and inter not in sets:
                            family[key] = inter
                            new.append(inter)
            frontier = new
        # counting numbers from the largest regions down: c_R = 1 - sum of c over strict super-regions
        regions = sorted(family.items(), key=lambda kv: (-math.prod(len(x) for x in kv[1]), kv[0]))
        counts: dict[tuple, int] = {}
        for key, cells in regions:
            above = sum(1 for w in sets if _inside(cells, w))
            above += sum(c for k2, c in counts.items() if k2 != key and _inside(cells, family[k2]))
            counts[key] = 1 - above
        kept = [key for key, _ in regions if counts[key] != 0]  # largest first
        return [self._separator(key, counts[key], sets) for key in kept]

    def _separator(self, key: tuple, count: int, sets) -> Separator:
        cells = tuple(frozenset(x) for x in key)
        wins = tuple(i for i, w in enumerate(sets) if _inside(cells, w))
        p = wins[0]
        ordered = []
        for x, o, n, w in zip(key, self.starts[p], self.length, self.wrap):
            ordered.append(tuple(sorted(x, key=lambda c, o=o, n=n, w=w: (c - o) % n if w else c - o)))
        return Separator(tuple(ordered), count, wins)

    def _check_counts(self):
        count: dict[tuple, int] = {}
        for i in range(self.n_windows):
            for c in _product(self.window_indices(i)):
                count[c] = count.get(c, 0) + 1
        for s in self._separators:
            for c in _product(s.indices):
                count[c] += s.count
        bad = [c for c, v in count.items() if v != 1]
        if bad:
            raise DiffcoreError(
                f"the windows and separators count {len(bad)} canvas cells {count[bad[0]]} times (the first at {bad[0]}), not once: "
                "windows that overlap must be joined by an edge of the tree"
            )


def _product(indices: tuple[tuple[int, ...], ...]):
    out = [()]
    for ix in indices:
        out = [c + (j,) for c in out for j in ix]
    return out


def _inside(cells: tuple[frozenset, ...], other: tuple[frozenset, ...]) -> bool:
    return all(a <= b for a, b in zip(cells, other))


def _axis(axis) -> int:
    (a,) = _ints("axis", axis)
    if a >= 0:
        raise DiffcoreError(f"axis counts from the end of the sample shape (-1 is its last axis, e.g. the width), got {a}")
    return a


def _stride(size: int, overlap: int) -> int:
    if size < 1:
        raise DiffcoreError(f"the window size must be at least 1, got {size}")
    if not 0 <= overlap < size:
        raise DiffcoreError(f"overlap {overlap} must be at least 0 and smaller than the window ({size})")
    return size - overlap


def chain(windows: int, size: int, overlap: int, axis: int = -1) -> Graph:
    """``windows`` windows of length ``size`` in a row along ``axis``, each overlapping the next by
    ``overlap``: a long image, a long 1-D signal, a long video (the frames axis). The canvas is
    ``size + (windows - 1) * (size - overlap)`` long.

    >>> chain(4, 32, 8).length
    (104,)
    """
    (windows,), (size,), (overlap,) = _ints("windows", windows), _ints("size", size), _ints("overlap", overlap)
    if windows < 1:
        raise DiffcoreError(f"a chain needs at least one window, got {windows}")
    stride = _stride(size, overlap)
    return Graph("chain", (_axis(axis),), (size,), (size + (windows - 1) * stride,), tuple((i * stride,) for i in range(windows)), (False,))


def cycle(windows: int, size: int, overlap: int, axis: int = -1) -> Graph:
    """A loop of ``windows`` windows along ``axis``: the last overlaps the first across the end of
    the canvas, so the content wraps around seamlessly (loops, 360° panoramas). The canvas is
    ``windows * (size - overlap)`` long.

    >>> g = cycle(4, 32, 8)
    >>> g.length, g.window_indices(3)[0][-1], len(g.separators)
    ((96,), 7, 4)
    """
    (windows,), (size,), (overlap,) = _ints("windows", windows), _ints("size", size), _ints("overlap", overlap)
    stride = _stride(size, overlap)
    if windows < 2 or windows * stride <= size:
        raise DiffcoreError(
            f"a cycle of {windows} windows of {size} with overlap {overlap} is not longer than one window; use more windows (at least "
            f"{size // stride + 1})"
        )
    return Graph("cycle", (_axis(axis),), (size,), (windows * stride,), tuple((i * stride,) for i in range(windows)), (True,))


def grid(rows: int, cols: int, size, overlap, *, wrap: bool = False) -> Graph:
    """``rows`` x ``cols`` windows on a 2-D canvas (the last two sample axes), neighbours
    overlapping by ``overlap`` (one number, or (vertical, horizontal)); ``size`` is the window's
    (height, width) or one number for a square. ``wrap=True`` wraps the columns around (a 360°
    panorama several windows high).

    >>> grid(2, 3, 32, 8).length
    (56, 80)
    """
    (rows,), (cols,) = _ints("rows", rows), _ints("cols", cols)
    (h, w), (oh, ow) = _ints("size", size, 2), _ints("overlap", overlap, 2)
    if rows < 1 or cols < 1:
        raise DiffcoreError(f"a grid needs at least one row and one column, got {rows} x {cols}")
    sh, sw = _stride(h, oh), _stride(w, ow)
    if wrap and (cols < 2 or cols * sw <= w):
        raise DiffcoreError(f"a wrapping grid of {cols} columns of {w} with overlap {ow} is not wider than one window; use more columns")
    length = (h + (rows - 1) * sh, cols * sw if wrap else w + (cols - 1) * sw)
    starts = tuple((r * sh, c * sw) for r in range(rows) for c in range(cols))
    return Graph("grid", (-2, -1), (h, w), length, starts, (False, bool(wrap)), grid_shape=(rows, cols))


def tree(windows, size, canvas, *, edges=None, axes=None, wrap=None) -> Graph:
    """Any layout of windows: ``windows`` are their offsets along the cut axes, ``size`` the window's
    and ``canvas`` the canvas's length along each; ``axes`` default to the last ``len(canvas)``
    sample axes. With ``edges`` (pairs of window numbers) the layout must be a tree, and each
    edge's overlap is a separator subtracted ``degree - 1`` times (DiffCollage); without, the
    regions and counting numbers come from the windows' intersections (loops allowed).

    >>> tree([[0], [12], [24]], [16], [40], edges=[[0, 1], [1, 2]]).kind
    'tree'
    """
    length = _ints("canvas", canvas, len(canvas) if isinstance(canvas, (list, tuple)) else None)
    k = len(length)
    axes = tuple(range(-k, 0)) if axes is None else _ints("axes", axes, k)
    starts = tuple(_ints(f"window {i}", w, k) for i, w in enumerate(windows))
    wrap = (False,) * k if wrap is None else tuple(bool(v) for v in (wrap if isinstance(wrap, (list, tuple)) else [wrap] * k))
    if len(wrap) != k:
        raise DiffcoreError(f"wrap needs {k} values, one per cut axis")
    if edges is not None:
        edges = tuple(_ints(f"edge {e!r}", e, 2) for e in edges)
    return Graph("tree" if edges is not None else "layout", axes, _ints("window", size, k), length, starts, wrap, edges)


_KEYS = {"canvas", "window", "windows", "edges", "axes", "wrap", "kind", "grid"}


def load(path) -> Graph:
    """A graph from a JSON file: ``{"canvas": [32, 96], "window": [32, 32], "windows": [[0, 0], [0, 32],
    [0, 64]], "edges": [[0, 1], [1, 2]]}`` (``edges``, ``axes`` and ``wrap`` optional; see :func:`tree`).
    Every problem is a one-line :class:`~diffcore.errors.DiffcoreError` naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DiffcoreError(f"graph file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DiffcoreError(f"graph file {path.name!r} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DiffcoreError(f"graph file {path.name!r} must hold a JSON object with canvas, window and windows")
    missing = sorted({"canvas", "window", "windows"} - set(data))
    unknown = sorted(set(data) - _KEYS)
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown keys {', '.join(unknown)}"
        raise DiffcoreError(f"graph file {path.name!r} {what}; it takes canvas, window, windows and optionally edges, axes, wrap")
    try:
        return tree(data["windows"], data["window"], data["canvas"], edges=data.get("edges"), axes=data.get("axes"), wrap=data.get("wrap"))
    except DiffcoreError as exc:
        raise DiffcoreError(f"graph file {path.name!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise DiffcoreError(f"graph file {path.name!r}: {exc}") from None
