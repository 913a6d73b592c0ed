"""``solve``: one posterior sample per item of y, with any registered solver.

>>> import torch, diffcore
>>> from diff_inverse.solve import solve
>>> from diff_inverse.operators import DenseLinear
>>> prior = diffcore.create("prior", "gaussian", mean=[0.0, 0.0])
>>> op = DenseLinear(torch.tensor([[1.0, 0.0]]), sigma_y=0.1)
>>> y = torch.ones(4, 1)
>>> x = solve(prior, op, y, solver="ddrm", steps=20, generator=torch.Generator().manual_seed(0))
>>> tuple(x.shape)
(4, 2)
"""

from __future__ import annotations

import warnings

import torch

from diff_inverse.solvers._common import sigma_y_of
from diff_inverse.solvers.fit import NOISELESS_ONLY, SolverWarning, fits, refusal, solvers_for
from diffcore.errors import DiffcoreError, ShapeError
from diffcore.protocols import check_prior_attributes


def _resolve(solver, options):
    if isinstance(solver, str):
        import diffcore

        return diffcore.create("solver", solver, **options)
    if options:
        raise DiffcoreError("options go with a solver name; a solver object already holds its own")
    if not callable(solver):
        raise DiffcoreError(f"solver must be a registered name or a callable, got {type(solver).__name__}")
    return solver


def solve(
    prior,
    operator,
    y,
    *,
    solver,
    steps: int,
    generator: torch.Generator | None = None,
    start=None,
    t_start=None,
    compile: bool | str = False,
    autocast=None,
    channels_last: bool | None = None,
    **options,
):
    """Sample ``x ~ p(x | y)`` for each item of the batch ``y`` (copies of one y give independent samples).

    ``solver`` is a registered name (``ddrm``, ``ddnm+``, ``pigdm``, ``dps``, ``mcgdiff``, ``red-diff``,
    ``diffpir``, ``daps``, ...; ``diffcore available solver``) whose options are keyword ``options``, or
    a solver object. ``start`` and
    ``t_start`` give a CCDF warm start: the estimate ``start`` diffused to time ``t_start``.
    Latent priors return decoded images. Device and dtype follow ``y``. A solver that does not fit
    the operator (:func:`diff_inverse.solvers.fits`: an SVD, a linear or a differentiable operator it
    needs) is refused before any work, naming the solvers that fit; a solver that assumes noiseless
    y (``ddnm``, ``projection``) runs on noisy y with a :class:`~diff_inverse.solvers.fit.SolverWarning`
    naming the solvers made for it. ``compile``, ``autocast`` and ``channels_last`` run the prior's
    network compiled (``True``: CUDA graphs on CUDA), in half precision with the solver's arithmetic
    in float32, or in channels-last layout (:class:`diffcore.devices.tuned`; one warning and the
    plain path where one cannot apply).
    """
    fn = _resolve(solver, options)
    check_prior_attributes(prior)
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.ndim < 1 or y.shape[0] < 1:
        raise ShapeError("y must be a floating-point tensor (N, *y_shape) with N >= 1")
    sigma_y_of(operator)
    if hasattr(operator, "check_y"):
        operator.check_y(y)
    x_shape = getattr(operator, "x_shape", None)
    if prior.latent is None and x_shape is not None and tuple(x_shape) != tuple(prior.sample_shape):
        raise ShapeError(f"the operator takes x of shape {tuple(x_shape)} but the prior's samples have shape {tuple(prior.sample_shape)}")
    if not torch.isfinite(y).all():
        raise DiffcoreError("y has non-finite values")
    if isinstance(solver, str):
        from diffcore.registry import parse_spec

        name = parse_spec(solver)[0]
    else:
        name = getattr(fn, "name", None) or type(fn).__name__
    reason = fits(fn, operator, strict=False)  # a noiseless-only solver still runs on noisy y, taking it as noiseless
    if reason is not None:
        raise DiffcoreError(refusal(name, operator, reason))
    if fits(fn, operator) == NOISELESS_ONLY:
        counterpart = getattr(fn, "noisy_counterpart", None)
        others = [counterpart] if counterpart else [s for s in solvers_for(operator) if s != name]
        warnings.warn(
            f"solver {name!r} assumes noiseless y, but sigma_y = {operator.sigma_y:g}: it takes the noise for signal"
            + (" (amplified by the operator's small singular values)" if counterpart else "")
            + (f"; for noisy y use {' or '.join(repr(o) for o in others[:3])}" if others else ""),
            SolverWarning,
            stacklevel=2,
        )
    warm = {} if start is None and t_start is None else {"start": start, "t_start": t_start}  # solvers of the hookspec need not take them
    from diffcore.devices import tuned

    with tuned(prior, compile=compile, autocast=autocast, channels_last=channels_last):
        x = fn(prior, operator, y, steps=steps, generator=generator, **warm)
    latent = prior.latent
    if latent is not None:
        with torch.no_grad():
            x = latent.decode(x)
    return x
