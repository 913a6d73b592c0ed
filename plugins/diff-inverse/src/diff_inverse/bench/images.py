"""The image benchmark: PSNR and SSIM of the diffusion solvers next to the classical baselines.

Each operator measures a batch of held-out test images once (one noise draw, ``seed``); every
solver that can take the operator restores the same ``y`` with the same number of network
calls (``steps``) and the same seed; the baselines are the classical reconstructions of
:mod:`diff_inverse.baselines`. Scores are the mean over the images of
:func:`diff_inverse.images.psnr` and :func:`diff_inverse.images.ssim`.

The parts: :mod:`~diff_inverse.bench.image_rows` (the operators of each zoo data set, parsing the
selections), :func:`run` here (measure and restore), :mod:`~diff_inverse.bench.image_scores`
(scores, and who beats the baselines) and :mod:`~diff_inverse.bench.image_page` (the page of one
section per prior). The default test set and operators depend on the prior's data (``zoo:digits``,
``zoo:patches``, ``zoo:textures``, ``zoo:phantoms``; through :mod:`diff_inverse.zoo`); any other
image prior takes ``images`` and a generic set of operators. Class-conditional priors are used
unconditionally (their null label).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch

from diff_inverse.bench.image_page import CHECK, PRIORS, TITLE, intro, markdown, regenerate, results_of, update_document, write
from diff_inverse.bench.image_rows import (
    DEFAULT_SIGMA_Y,
    DEFAULT_SOLVERS,
    ROWS,
    Row,
    build,
    build_solvers,
    generic_rows,
    operator_rows,
    resolve_rows,
    split_items,
)
from diff_inverse.bench.image_scores import FAILED, LOSS, Result, RowResult, Scores, score
from diff_inverse.zoo import HeldOutImages
from diff_inverse.zoo import test_set as default_test_set
from diffcore.errors import DiffcoreError

__all__ = [
    "CHECK",
    "DEFAULT_SIGMA_Y",
    "DEFAULT_SOLVERS",
    "FAILED",
    "LOSS",
    "PRIORS",
    "ROWS",
    "TITLE",
    "DiffcoreError",
    "HeldOutImages",
    "Result",
    "Row",
    "RowResult",
    "Scores",
    "default_test_set",
    "generic_rows",
    "intro",
    "markdown",
    "not_applicable",
    "operator_rows",
    "public_spec",
    "regenerate",
    "resolve_rows",
    "results_of",
    "run",
    "run_check",
    "split_items",
    "update_document",
    "write",
]


def not_applicable(name: str, solver, operator) -> str | None:
    """Why solver ``name`` does not take ``operator`` (None when it does): :func:`diff_inverse.solvers.fits`, the rule
    ``solve`` and ``solvers_for`` use, with the noiseless-only solvers (``ddnm``, ``ilvr``, ``projection``) on sigma_y = 0 rows only."""
    from diff_inverse.solvers import fits

    return fits(solver, operator)


def _baselines(operator, y, images: torch.Tensor) -> dict[str, Scores]:
    from diff_inverse.baselines import baselines

    out = {name: score(x.cpu(), images) for name, x in baselines(operator, y).items()}
    if not getattr(operator, "linear", False) and tuple(operator.y_shape) == tuple(operator.x_shape):
        out["measurement"] = score(y.detach().cpu(), images)  # JPEG: the compressed image itself
    return out


def run(
    prior,
    images: torch.Tensor | None = None,
    operators: Sequence[str] | None = None,
    solvers: Sequence[str] | None = None,
    steps: int = 20,
    seed: int = 0,
    *,
    n: int = 8,
    sigma_y: float = DEFAULT_SIGMA_Y,
    samples: int = 1,
    description: str | None = None,
    progress: Callable[[str, str, Scores | str], None] | None = None,
    device=None,
    dtype=None,
) -> Result:
    """Measure the test images with each operator and restore them with each solver.

    ``prior`` is a prior spec (``zoo:digits``, ``zoo:patches:path=DIR``) or a prior object;
    ``images`` (``(N, C, H, W)`` in [-1, 1]) default to the prior's held-out test set (``n``
    images; zoo priors only). ``operators`` are keys of the prior's default rows or operator specs
    (measured with ``sigma_y`` unless they set it); ``solvers`` are solver specs (default
    :data:`DEFAULT_SOLVERS`). Every solver runs ``steps`` network calls per image with
    ``torch.Generator().manual_seed(seed + 1)``; the measurement noise comes from ``seed``.
    A solver that does not take an operator (:func:`not_applicable`) is recorded with the reason;
    one whose solve raises a DiffcoreError is recorded as failed, a loss.

    ``samples > 1`` draws that many posterior samples per image in one batched solve (copies of
    each ``y``) and scores, besides the first sample, their mean: the Monte Carlo estimate of the
    posterior mean, the estimator that minimises the expected squared error and so the one PSNR
    favours (a single posterior sample has twice its expected squared error).

    ``device`` and ``dtype`` (a prior spec only; see :func:`diffcore.devices.build_prior`) choose
    where the network runs; measurements and solves follow the prior's device, scores are computed
    on the CPU, and the seeded generators stay on the CPU.
    """
    from diff_inverse.restore import image_shape
    from diff_inverse.solve import solve
    from diffcore.priors import unconditional
    from diffcore.registry import parse_spec

    if not isinstance(steps, int) or steps < 1:
        raise DiffcoreError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(samples, int) or samples < 1:
        raise DiffcoreError(f"samples (posterior samples per image) must be an integer >= 1, got {samples!r}")
    if not (isinstance(sigma_y, (int, float)) and math.isfinite(sigma_y) and sigma_y >= 0):
        raise DiffcoreError(f"sigma_y must be a finite number >= 0, got {sigma_y!r}")
    solver_objs = build_solvers(solvers)  # unknown solvers fail before the prior loads
    spec = prior if isinstance(prior, str) else getattr(prior, "name", type(prior).__name__)
    if isinstance(prior, str):
        from diffcore.devices import build_prior

        model = build_prior(prior, device=device, dtype=dtype)
    else:
        model = prior
    shape = image_shape(model)
    rows = resolve_rows(operators, spec, shape, sigma_y)
    featured, featured_name = None, ""
    if images is None:
        if not isinstance(n, int) or n < 1:
            raise DiffcoreError(f"n (test images) must be an integer >= 1, got {n!r}")
        held_out = default_test_set(spec, n, shape)
        images, featured, featured_name = held_out.images, held_out.featured, held_out.featured_name
        description = description or held_out.description
    images = torch.as_tensor(images, dtype=torch.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(shape) or images.shape[0] < 1:
        raise DiffcoreError(f"images must be (N, {', '.join(map(str, shape))}) for this prior, got {tuple(images.shape)}")
    built = []
    for row in rows:  # every operator is built before any solver runs
        options = {} if "sigma_y" in parse_spec(row.spec)[1] else {"sigma_y": row.sigma_y}
        op = build("operator", row.spec, x_shape=shape, **options)
        built.append((row if row.sigma_y == op.sigma_y else Row(row.key, row.spec, float(op.sigma_y), row.label), op))
    if model.accepts and model.null_cond is not None:
        model = unconditional(model)

    results = []
    for row, op in built:
        y = op.measure(images.to(model.device), torch.Generator().manual_seed(seed))
        rr = RowResult(row, type(op).__name__, _baselines(op, y, images))
        for name, solver in solver_objs.items():
            reason = not_applicable(name, solver, op)
            if reason is not None:
                rr.cells[name] = reason
            else:
                start = time.perf_counter()
                copies = y.repeat_interleave(samples, 0) if samples > 1 else y
                try:
                    x = solve(model, op, copies, solver=solver, steps=steps, generator=torch.Generator().manual_seed(seed + 1))
                except DiffcoreError as exc:  # a failure is a loss, shown as such
                    rr.cells[name] = FAILED + str(exc)
                else:
                    seconds = time.perf_counter() - start
                    x = x.detach().cpu().reshape(images.shape[0], samples, *images.shape[1:])
                    rr.cells[name] = score(x[:, 0], images, seconds)
                    if samples > 1:
                        rr.means[name] = score(x.clamp(-1, 1).mean(1), images, seconds)
            if progress is not None:
                progress(row.key, name, rr.cells[name])
        results.append(rr)
    name, options = parse_spec(spec)
    return Result(
        prior=public_spec(spec),
        key=name,
        test_set=description or f"{images.shape[0]} given images",
        n=int(images.shape[0]),
        shape=tuple(shape),
        steps=steps,
        seed=seed,
        solvers=list(solver_objs),
        rows=results,
        threads=torch.get_num_threads(),
        featured=featured,
        featured_name=featured_name,
        samples=samples,
    )


def run_check(progress=None) -> Result:
    """The check section: :data:`~diff_inverse.bench.image_page.CHECK`, measured with the current code."""
    result = run(CHECK["prior"], operators=CHECK["operators"], steps=CHECK["steps"], n=CHECK["n"], seed=CHECK["seed"], progress=progress)
    result.key = "check"
    result.command = "diffcore inverse bench images --check --out docs/inverse-images.md"
    return result


def public_spec(spec: str) -> str:
    """``spec`` without the local folder of ``path=`` (no machine's paths in a published page)."""
    from diffcore.registry import parse_spec

    name, options = parse_spec(spec)
    if not options:
        return spec
    shown = ",".join(f"{k}=DIR" if k == "path" else f"{k}={v!r}" for k, v in options.items())
    return f"{name}:{shown}"
