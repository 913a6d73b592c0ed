"""The ``collage`` prior component: a collage built from options alone, for specs and the command line.

``diffcore.create("prior", "collage:base=zoo:patches,graph=grid,rows=4,cols=4,overlap=8")`` and
``diffcore inverse solve --prior 'collage:base=zoo:patches,graph=grid,rows=4,cols=4'`` build the
window prior from ``base`` (any prior spec; quote one that has options of its own,
``base='zoo:textures:clip_x0=false'``, or give them as ``base_options``) and the graph from
``graph`` (``chain``, ``cycle``, ``grid`` or a JSON file) with the window size read from the prior.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from diff_collage import graphs
from diff_collage.conds import expand_list, label_conds
from diff_collage.prior import collage
from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond

GRAPHS = ("chain", "cycle", "grid")


def make_graph(
    prior, graph: str = "chain", *, windows: int = 4, rows: int = 2, cols: int = 2, overlap=None, axis: int = -1, wrap: bool = False
):
    """The graph ``graph`` (a builder's name or a JSON file) for windows of ``prior``'s sample shape;
    ``overlap`` defaults to half a window."""
    shape = tuple(prior.sample_shape)
    if graph in ("chain", "cycle"):
        if isinstance(axis, bool) or not isinstance(axis, int) or not -len(shape) <= axis < 0:
            raise DiffcoreError(f"axis {axis!r} is not a sample axis of {shape} (count from the end: -1 is the last)")
        build = graphs.chain if graph == "chain" else graphs.cycle
        return build(windows, shape[axis], shape[axis] // 2 if overlap is None else overlap, axis=axis)
    if graph == "grid":
        if len(shape) < 2:
            raise DiffcoreError(f"a grid needs samples with two axes to cut; this prior's are {shape}")
        return graphs.grid(rows, cols, shape[-2:], (shape[-2] // 2, shape[-1] // 2) if overlap is None else overlap, wrap=wrap)
    if str(graph).endswith(".json"):
        return graphs.load(graph)
    raise DiffcoreError(f"unknown graph {graph!r}; use {', '.join(GRAPHS)} or a JSON file (name ending in .json)")


def _options(value, what: str) -> dict:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DiffcoreError(f"{what} must be a dict or a JSON object: {exc}") from None
    if not isinstance(value, Mapping):
        raise DiffcoreError(f"{what} must be a dict or a JSON object, got {type(value).__name__}")
    return dict(value)


def window_conds(prior, n_windows: int, *, label=None, labels=None, prompt=None, prompts=None):
    """Per-window conditions from labels (``label`` for all, ``labels`` one per window, ``"brick*4,grass*4"``)
    or prompts; None when none is given."""
    given = [k for k, v in (("label", label), ("labels", labels), ("prompt", prompt), ("prompts", prompts)) if v is not None]
    if len(given) > 1:
        raise DiffcoreError(f"give one of label, labels, prompt, prompts; got {', '.join(given)}")
    if label is not None:
        return label_conds(prior, [label]) * n_windows
    if labels is not None:
        conds = label_conds(prior, labels)
    elif prompt is not None:
        conds = [Cond(text=str(prompt))] * n_windows
    elif prompts is not None:
        conds = [Cond(text=p) for p in expand_list(prompts)]
    else:
        return None
    if len(conds) != n_windows:
        raise DiffcoreError(
            f"{len(conds)} per-window conditions for a graph of {n_windows} windows; give one per window (NAME*K repeats one)"
        )
    return conds


def collage_prior(
    base: str,
    graph: str = "chain",
    windows: int = 4,
    rows: int = 2,
    cols: int = 2,
    overlap=None,
    axis: int = -1,
    wrap: bool = False,
    method: str = "diffcollage",
    separator: str = "crop",
    separator_prior: str | None = None,
    separator_steps: int = 1,
    label=None,
    labels=None,
    prompt: str | None = None,
    prompts=None,
    max_batch: int | None = None,
    mixture_sigma: float = 0.1,
    clip_x0=None,
    base_options=None,
    device=None,
    dtype=None,
):
    """A large canvas from a prior on small windows: DiffCollage, MultiDiffusion or Mixture of Diffusers over a chain, cycle, grid or
    JSON graph"""
    from diffcore.devices import build_prior

    if not isinstance(base, str):
        raise DiffcoreError(f"base must be a prior spec such as 'zoo:textures', got {type(base).__name__}")
    window = build_prior(base, device=device, dtype=dtype, **_options(base_options, "base_options"))
    g = make_graph(window, graph, windows=windows, rows=rows, cols=cols, overlap=overlap, axis=axis, wrap=wrap)
    conds = window_conds(window, g.n_windows, label=label, labels=labels, prompt=prompt, prompts=prompts)
    sep = build_prior(separator_prior, device=device, dtype=dtype) if separator_prior is not None else None
    return collage(
        window,
        g,
        separator_prior=sep,
        method=method,
        max_batch=max_batch,
        conds=conds,
        separator=separator,
        separator_steps=separator_steps,
        mixture_sigma=mixture_sigma,
        clip_x0=clip_x0,
    )
