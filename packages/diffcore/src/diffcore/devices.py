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
import sys
from typing import NamedTuple

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


# -- host reads: what a step loop must not do on an accelerator -----------------------------------------


class Read(NamedTuple):
    """One read counted by :class:`HostReads`: the tensor method, the tensor's dtype, and the module that called it."""

    method: str
    dtype: torch.dtype
    module: str


READS = ("item", "__float__", "__int__", "__index__", "__bool__", "tolist", "numpy", "nonzero")


def _masked(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class HostReads:
    """Counts the tensor methods that read a value back to Python while it is active.

    ``item()``, ``float()``, ``int()``, ``bool()`` (a Python ``if`` on a tensor), ``tolist()``,
    ``numpy()``, ``nonzero()`` and indexing with a boolean mask (its size is data-dependent): on a
    CUDA tensor each waits for the device
    (a host-device synchronisation). On the CPU nothing waits, but the count is the same, so a test
    on the CPU checks a loop that claims none. ``reads`` lists them as :class:`Read` ``(method, dtype,
    module)``, the module being the caller's; reads inside a ``with counter.paused():`` block (e.g. a
    prior's own call) are not counted.

    >>> with HostReads() as counter:
    ...     x = torch.ones(3)
    ...     _ = float(x.sum()), x * 2
    >>> [(r.method, r.dtype) for r in counter.reads]
    [('__float__', torch.float32)]
    """

    def __init__(self):
        self.reads: list[Read] = []
        self._paused = 0
        self._mode = None

    def __enter__(self):
        from torch.overrides import TorchFunctionMode

        counter = self

        class _Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__name__", "")
                if not counter._paused and args and isinstance(args[0], torch.Tensor):
                    if name in ("__getitem__", "__setitem__") and _masked(args[1]):
                        name = f"{name}[mask]"
                    elif name not in READS:
                        return func(*args, **(kwargs or {}))
                    caller = sys._getframe(1).f_globals.get("__name__", "?")
                    counter.reads.append(Read(name, args[0].dtype, caller))
                return func(*args, **(kwargs or {}))

        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        self._mode = None

    def paused(self):
        """A context in which reads are not counted."""
        import contextlib

        @contextlib.contextmanager
        def pause():
            self._paused += 1
            try:
                yield
            finally:
                self._paused -= 1

        return pause()


# -- how the network runs: compiled, under autocast, channels-last ----------------------------------------

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class SpeedWarning(UserWarning):
    """An asked-for speed option (compile, autocast, channels-last) that cannot apply here: the plain path runs instead."""


def _holder(prior):
    """The object whose ``network`` attribute is the prior's module (wrappers looked through), or None."""
    from diffcore.priors.wrapper import PriorWrapper

    seen = prior
    while isinstance(seen, PriorWrapper) and "network" not in seen.__dict__:
        seen = seen.prior
    return seen if isinstance(getattr(seen, "network", None), torch.nn.Module) else None


def _first_device(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def _is_channels_last(module: torch.nn.Module) -> bool:
    return any(p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in module.parameters())


def _to_layout(out, fmt):
    if isinstance(out, torch.Tensor):
        return out.contiguous(memory_format=fmt) if out.ndim == 4 else out
    if isinstance(out, tuple):
        return tuple(_to_layout(o, fmt) for o in out)
    return out


class TunedNetwork(torch.nn.Module):
    """The prior's network run compiled, under autocast and/or in channels-last layout (see :func:`tuned`).

    Inputs go in channels-last when asked, outputs come back in the usual layout; under autocast
    the network computes in ``autocast`` and the prior converts its output to the state's dtype,
    so the sampler's and solver's arithmetic stays in float32. A compiled call that fails (a
    graph that cannot be captured) warns once and runs the plain network from then on.
    """

    def __init__(self, network: torch.nn.Module, *, mode: str | None, autocast: torch.dtype | None, channels_last: bool):
        super().__init__()
        self.network = network
        self.train(network.training)  # the network's mode, not a new module's (training)
        self.mode, self.autocast, self.channels_last = mode, autocast, channels_last
        self.device = _first_device(network)
        self.__dict__["compiled"] = (
            torch.compile(network, mode=mode, dynamic=False) if mode else None
        )  # not a submodule: no second copy of the parameters

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["network"], name)  # config, dtype, ...: the network's

    def forward(self, sample, *args, **kwargs):
        if self.channels_last and sample.ndim == 4:
            sample = sample.contiguous(memory_format=torch.channels_last)
        context = torch.autocast(self.device.type, dtype=self.autocast) if self.autocast is not None else _nothing()
        with context:
            out = self._call(sample, *args, **kwargs)
        return _to_layout(out, torch.contiguous_format) if self.channels_last else out

    def _call(self, sample, *args, **kwargs):
        compiled = self.__dict__.get("compiled")
        if compiled is None:
            return self.network(sample, *args, **kwargs)
        # CPU tensors among the inputs (the adapter's timestep) keep CUDA graphs from capturing: move them first
        args = tuple(a.to(sample.device) if isinstance(a, torch.Tensor) and a.device != sample.device else a for a in args)
        graphs = self.mode == "reduce-overhead" and sample.device.type == "cuda"
        try:
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            out = compiled(sample, *args, **kwargs)
        except Exception as exc:  # capture is not possible here: one warning, then the plain network
            import warnings

            self.__dict__["compiled"] = None
            warnings.warn(
                f"compile: the network could not be compiled ({type(exc).__name__}: {exc}); running it uncompiled",
                SpeedWarning,
                stacklevel=2,
            )
            return self.network(sample, *args, **kwargs)
        # CUDA graphs reuse their output buffers at the next replay: a prediction kept across steps needs its own copy
        return _clone(out) if graphs else out


def _clone(out):
    if isinstance(out, torch.Tensor):
        return out.clone()
    if isinstance(out, tuple):
        return tuple(_clone(o) for o in out)
    return out


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def compile_mode(compile, device: torch.device) -> tuple[str | None, str | None]:
    """``(mode, why not)``: the torch.compile mode that ``compile`` asks for on ``device``, or None and the reason.

    ``True`` is ``"reduce-overhead"`` (CUDA graphs) on CUDA; on another device it falls back, since
    CUDA graphs need CUDA. A mode by name (:data:`COMPILE_MODES`) compiles on any device.

    >>> print(compile_mode(True, torch.device("cpu"))[1])  # doctest: +ELLIPSIS
    compile=True captures CUDA graphs (...), which need a CUDA device; the network is on cpu (compile='default' compiles on any device)
    """
    if compile is False or compile is None:
        return None, None
    if compile is True:
        if device.type != "cuda":
            return None, (
                "compile=True captures CUDA graphs (torch.compile mode 'reduce-overhead'), which need a CUDA device; "
                f"the network is on {device.type} (compile='default' compiles on any device)"
            )
        return "reduce-overhead", None
    if compile not in COMPILE_MODES:
        raise DiffcoreError(f"compile must be true, false or a torch.compile mode ({', '.join(COMPILE_MODES)}), got {compile!r}")
    return compile, None


class tuned:
    """Run ``prior``'s network compiled, under autocast and/or channels-last for the duration of a ``with`` block.

    - ``compile``: ``True`` (CUDA graphs through ``torch.compile(mode="reduce-overhead")`` on CUDA), a
      torch.compile mode by name, or False;
    - ``autocast``: ``bfloat16`` / ``float16`` (or their short names): the network computes in it
      under ``torch.autocast``, with its weights and the sampler's or solver's arithmetic in float32;
    - ``channels_last``: the network's weights and inputs in channels-last layout (restored after).

    The prior's ``network`` (a wrapper's inner prior's) is swapped for a :class:`TunedNetwork` and
    swapped back on exit. Where an option cannot apply (no network module, compile=True off CUDA,
    a graph that cannot be captured) one :class:`SpeedWarning` says why and the plain path runs.

    >>> import diffcore, warnings
    >>> gmm = diffcore.create("prior", "gaussian", mean=[0.0])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     with tuned(gmm, compile=True):
    ...         pass
    >>> str(caught[0].message)
    'compile=True: prior GaussianPrior has no network module to compile; it runs as it is'
    """

    def __init__(self, prior, *, compile=False, autocast=None, channels_last: bool | None = None):
        self.prior, self.compile = prior, compile
        self.autocast = resolve_dtype(autocast)
        if self.autocast not in (None, torch.bfloat16, torch.float16):
            raise DiffcoreError(f"autocast must be bfloat16 or float16, got {autocast!r}")
        self.channels_last = channels_last
        self._holder = self._network = None
        self._converted = False

    def __enter__(self):
        import warnings

        asked = [name for name, on in (("compile", self.compile), ("autocast", self.autocast), ("channels_last", self.channels_last)) if on]
        if not asked:
            return self.prior
        holder = _holder(self.prior)
        if holder is None:
            first = asked[0] + ("=True" if asked[0] != "autocast" else f"={self.autocast}")
            warnings.warn(
                f"{first}: prior {type(self.prior).__name__} has no network module to {asked[0].replace('_', ' ')}; it runs as it is",
                SpeedWarning,
                stacklevel=2,
            )
            return self.prior
        network = holder.network
        device = _first_device(network)
        mode, why = compile_mode(self.compile, device)
        if why:
            warnings.warn(why + "; running it uncompiled", SpeedWarning, stacklevel=2)
        if self.channels_last and not _is_channels_last(network):
            network.to(memory_format=torch.channels_last)
            self._converted = True
        self._holder, self._network = holder, network
        holder.network = TunedNetwork(network, mode=mode, autocast=self.autocast, channels_last=bool(self.channels_last))
        return self.prior

    def __exit__(self, *exc):
        if self._holder is not None:
            self._holder.network = self._network
            if self._converted:
                self._network.to(memory_format=torch.contiguous_format)
        self._holder = self._network = None
        return False


def speed_options(fn):
    """Click options ``--compile``, ``--autocast`` and ``--channels-last`` (see :class:`tuned`), passed as
    ``compile_network``, ``autocast`` and ``channels_last``."""
    import click

    fn = click.option(
        "--channels-last",
        "channels_last",
        is_flag=True,
        default=False,
        help="Run the network in channels-last layout (its weights and inputs).",
    )(fn)
    fn = click.option(
        "--autocast",
        default=None,
        metavar="DTYPE",
        help="Run the network under autocast in bfloat16 or float16; the rest stays in float32.",
    )(fn)
    return click.option(
        "--compile",
        "compile_network",
        is_flag=True,
        default=False,
        help="Compile the network: CUDA graphs (torch.compile mode 'reduce-overhead') on CUDA; elsewhere one warning and the plain path.",
    )(fn)
