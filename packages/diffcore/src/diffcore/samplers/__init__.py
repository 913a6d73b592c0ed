"""Samplers: functions with one signature and an explicit generator.

``sampler(prior, x, ts, *, cond=None, generator=None, callback=None, **options) -> x0``

``x`` is the starting noise at ``ts[0]``; ``ts`` is the schedule's decreasing time grid
(``prior.schedule.timesteps(steps)``); ``callback(i, t, x, prediction)`` runs after each step.
Samplers hold no state between calls. :func:`sample` is the entry point most users want.

>>> import torch, diffcore
>>> prior = diffcore.priors.GaussianPrior(mean=[3.0, -1.0])
>>> x = diffcore.sample(prior, 512, steps=20, generator=torch.Generator().manual_seed(0))
>>> bool((x.mean(0) - torch.tensor([3.0, -1.0])).abs().max() < 0.15)
True
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError
from diffcore.protocols import Cond, check_cond, check_prior_attributes
from diffcore.samplers.ddim import ddim, ddim_step
from diffcore.samplers.ddpm import ddpm, ddpm_step
from diffcore.samplers.dpmpp import dpmpp_2m
from diffcore.samplers.edm import euler, heun
from diffcore.samplers.grid import noise_like

# diffcore's own samplers and their aliases, registered by the built-in plugin (diffcore.builtin);
# `diffcore.available("sampler")` lists every registered one.
SAMPLERS = {"ddpm": ddpm, "ddim": ddim, "euler": euler, "heun": heun, "dpm++2m": dpmpp_2m}
ALIASES = {"dpmpp_2m": "dpm++2m", "dpmpp-2m": "dpm++2m", "dpm-solver++": "dpm++2m", "ancestral": "ddpm"}


def get_sampler(name: str, **options):
    """The registered sampler ``name`` (an alias, or ``name:key=value,...``) with ``options`` bound:
    ``sampler(prior, x, ts, *, cond=None, generator=None, callback=None) -> x0``.

    :data:`SAMPLERS` holds diffcore's own, which its built-in plugin registers; plugins add theirs
    through ``register_samplers``. An unknown name lists the registered samplers, an option the
    sampler does not take the options it does. Without options a built-in sampler is its function.
    """
    from diffcore.samplers.factory import build_sampler

    return build_sampler(name, options)


STARTS = ("prior", "normal")


def initial_noise(
    prior, n: int, t, *, generator=None, device=None, dtype=torch.float32, start: str = "prior", cond: Cond | None = None
) -> torch.Tensor:
    """The state to start sampling from at time t.

    ``start="prior"`` (default): the prior's exact marginal at t where it knows it
    (``prior.sample_marginal``, e.g. a Gaussian mixture, and only without a condition), else
    ``N(0, init_std(t)^2)``; ``start="normal"``: always ``N(0, init_std(t)^2)``, which assumes
    unit data variance (``init_std = sqrt(alpha^2 + sigma^2)``).
    """
    if start not in STARTS:
        raise DiffcoreError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    device = torch.device(device) if device is not None else torch.device(prior.device)
    if start == "prior" and (cond is None or not cond.given()):
        x = prior.sample_marginal(n, torch.as_tensor(t, dtype=torch.float64), generator=generator, dtype=dtype, device=device)
        if x is not None:
            return x
    x = noise_like(torch.empty((n, *prior.sample_shape), dtype=dtype, device=device), generator)
    return x * prior.schedule.init_std(torch.as_tensor(t, dtype=torch.float64)).to(dtype)


def sample(
    prior,
    n: int,
    *,
    steps: int,
    sampler: str = "ddim",
    cond: Cond | None = None,
    generator: torch.Generator | None = None,
    decode: bool = True,
    progress: bool = False,
    device=None,
    dtype=torch.float32,
    start: str = "prior",
    compile: bool | str = False,
    autocast=None,
    channels_last: bool | None = None,
    **options,
) -> torch.Tensor:
    """Draw ``n`` samples from ``prior`` with ``steps`` steps of ``sampler``.

    Samplers: ``ddpm`` (ancestral), ``ddim`` (option ``eta``), ``euler`` and ``heun`` (EDM;
    options ``s_churn``, ``s_tmin``, ``s_tmax``, ``s_noise``), ``dpm++2m``, or any a plugin registers
    (``diffcore available sampler``); ``options`` are the sampler's, or inline in its name
    (``sampler="ddim:eta=0.5"``). Latent priors are
    decoded to images unless ``decode=False``. The same generator seed gives the same samples.
    ``start`` chooses the starting state (:func:`initial_noise`): the prior's exact marginal where
    it knows one (``"prior"``, the default), or ``"normal"``, N(0, init_std^2) always.
    ``compile``, ``autocast`` and ``channels_last`` run the prior's network compiled (``True``: CUDA
    graphs on CUDA), in half precision with the sampler's arithmetic in float32, or in channels-last
    layout (:class:`diffcore.devices.tuned`; one warning and the plain path where one cannot apply).
    """
    check_prior_attributes(prior)
    callback = options.pop("callback", None)
    fn = get_sampler(sampler, **options)
    if not isinstance(n, int) or n < 1:
        raise DiffcoreError(f"n must be a positive integer, got {n!r}")
    check_cond(type(prior).__name__, prior.accepts, cond)
    ts = prior.schedule.timesteps(steps)
    x = initial_noise(prior, n, ts[0], generator=generator, device=device, dtype=dtype, start=start, cond=cond)
    from diffcore.devices import tuned

    with tuned(prior, compile=compile, autocast=autocast, channels_last=channels_last):
        x = _walk(prior, fn, x, ts, cond, generator, callback, progress, sampler)
    latent = prior.latent
    if decode and latent is not None:
        with torch.no_grad():
            x = latent.decode(x)
    return x


def _walk(prior, fn, x, ts, cond, generator, callback, progress, sampler):
    if progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"{sampler} x{x.shape[0]}", total=len(ts) - 1)

            def tick(i, t, xi, pred):
                bar.advance(task)
                if callback is not None:
                    callback(i, t, xi, pred)

            x = fn(prior, x, ts, cond=cond, generator=generator, callback=tick)
    else:
        x = fn(prior, x, ts, cond=cond, generator=generator, callback=callback)
    return x


__all__ = ["SAMPLERS", "ddim", "ddim_step", "ddpm", "ddpm_step", "dpmpp_2m", "euler", "get_sampler", "heun", "initial_noise", "sample"]
