"""Where a prior runs: ``--device`` and ``--dtype`` for every command that builds one.

A device is ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; a dtype ``float32``, ``float16`` or
``bfloat16``. Without ``--device`` the environment variable ``DIFFCORE_DEVICE`` decides, and
without it the prior's own default (the CPU). Randomness stays on the CPU generator the command
seeds, so the same seed gives the same samples on every device up to float rounding.

:func:`build_prior` passes them to a prior factory that takes ``device`` / ``dtype`` (the diffusers
adapters, the zoo, and wrappers that build their inner prior from a spec) and refuses them,
in one line, for a factory that does not (the exact Gaussian mixtures run on the CPU in float64).

>>> resolve_dtype("bf16")
torch.bfloat16
>>> resolve_device("cuda:x")
Traceback (most recent call last):
...
diffcore.errors.DiffcoreError: unknown device 'cuda:x'; use cpu, cuda, cuda:N or mps
"""

from __future__ import annotations

import inspect
import os
import re

import torch

from diffcore.errors import DiffcoreError

ENV = "DIFFCORE_DEVICE"
DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def resolve_device(device: str | torch.device | None = None) -> torch.device | None:
    """The device asked for (``device``, else ``$DIFFCORE_DEVICE``), checked; None when neither says.

    A CUDA or MPS device that this machine does not have is a one-line error naming what it has.
    """
    if device is None:
        device = os.environ.get(ENV) or None
        if device is None:
            return None
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    if not _DEVICE.match(name):
        raise DiffcoreError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DiffcoreError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu (or unset {ENV})")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DiffcoreError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DiffcoreError(f"device 'mps' was asked for but MPS is not available here; use --device cpu (or unset {ENV})")
    return torch.device(name)


def resolve_dtype(dtype: str | torch.dtype | None = None) -> torch.dtype | None:
    """``float32``, ``float16`` or ``bfloat16`` (also ``fp32``, ``fp16``, ``half``, ``bf16``); None stays None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).strip().lower().removeprefix("torch.")
    if key not in DTYPES:
        raise DiffcoreError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    return DTYPES[key]


def build_prior(spec: str, *, device=None, dtype=None, **options):
    """``diffcore.create("prior", spec, **options)`` on ``device`` in ``dtype`` (see the module docstring)."""
    from diffcore.plugin_host import component
    from diffcore.registry import build, parse_spec

    device, dtype = resolve_device(device), resolve_dtype(dtype)
    name, inline = parse_spec(spec)
    comp = component("prior", name)
    merged = {**inline, **options}
    accepted = _accepts(comp.factory)
    for key, value in (("device", device), ("dtype", dtype)):
        if value is None or key in merged:
            continue
        if key in accepted:
            merged[key] = value
        elif not (key == "device" and value.type == "cpu") and not (key == "dtype" and value == torch.float32):
            raise DiffcoreError(f"prior {name!r} does not take a {key}: it runs on the CPU in float32/float64; drop --{key}")
    try:
        return build(comp, merged)
    except (TypeError, ValueError) as exc:  # a bad option value the factory could not take
        raise DiffcoreError(f"cannot build prior {spec!r}: {type(exc).__name__}: {exc}") from exc


def _accepts(factory) -> set[str]:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return {"device", "dtype"}
    return {p.name for p in params}


def device_options(fn):
    """Click options ``--device`` and ``--dtype`` for a command that builds a prior (see :func:`build_prior`)."""
    import click

    fn = click.option(
        "--dtype", default=None, metavar="DTYPE", help="Network precision: float32, float16 or bfloat16 (default: the prior's, float32)."
    )(fn)
    return click.option("--device", default=None, metavar="DEVICE", help=f"cpu, cuda, cuda:N or mps (default: ${ENV}, else the CPU).")(fn)
