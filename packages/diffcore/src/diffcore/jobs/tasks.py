"""Tasks: what a job does to each item.

A task is a factory, like every diffcore component: ``factory(**options)`` takes the job's
``[options]``, checks them, builds what every item shares (a prior, a solver) once per process,
and returns a callable ``run(item) -> {suffix: bytes}``. The runner writes each value to
``OUT/<item.key><suffix>`` atomically; a task never writes files itself. ``run`` must be
deterministic given the item (draw randomness from ``torch.Generator().manual_seed(item.seed)``),
so a resumed or sharded job writes the same bytes.

Tasks are components of kind ``task``, registered through the ``register_tasks`` hook (diffcore's
``sample`` too, by its built-in plugin); :data:`TASKS` reads them from the registry, and a job file
names one by its registered name (``task = "sample"``). A plugin command decorated with
:func:`diffcore.jobs.job_option` takes ``--job JOB.toml`` and is also a task, which ``diffcore run``
finds by its command path (``task = "inverse restore"``).
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from diffcore.errors import DiffcoreError, closest
from diffcore.jobs.items import Item

FORMATS = ("npy", "safetensors", "png")


@dataclass(frozen=True)
class Task:
    """A named task: ``factory(**options) -> run`` with ``run(item) -> {suffix: bytes}``."""

    name: str
    factory: Callable[..., Callable[[Item], dict[str, bytes]]]
    summary: str = ""
    aliases: tuple[str, ...] = ()

    def options(self) -> list[str]:
        sig = inspect.signature(self.factory)
        return [p.name for p in sig.parameters.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def prepare(self, options: dict[str, Any]) -> Callable[[Item], dict[str, bytes]]:
        """Check ``options`` against the factory and build the per-item callable (before any work)."""
        try:
            inspect.signature(self.factory).bind(**options)
        except TypeError as exc:
            accepted = self.options()
            unknown = [k for k in options if k not in accepted]
            hint = closest(unknown[0], accepted) if unknown else None
            raise DiffcoreError(
                f"bad [options] for task {self.name!r}: {exc}; it accepts: {', '.join(accepted) or 'none'}"
                + (f" (did you mean {hint!r}?)" if hint else "")
            ) from None
        try:
            return self.factory(**options)
        except (TypeError, ValueError, ImportError) as exc:
            raise DiffcoreError(f"cannot set up task {self.name!r} with these [options]: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class SampleRun:
    """Draws ``n`` samples per item from a prior, seeded by the item's seed."""

    prior: Any
    n: int
    steps: int
    sampler: str
    format: str
    sampler_options: dict[str, Any]
    metadata: dict[str, str]

    def __call__(self, item: Item) -> dict[str, bytes]:
        import torch

        from diffcore.samplers import sample as draw

        generator = torch.Generator().manual_seed(item.seed)
        x = draw(self.prior, self.n, steps=self.steps, sampler=self.sampler, generator=generator, **self.sampler_options).cpu()
        return {f".{self.format}": encode(x, self.format, {**self.metadata, "seed": str(item.seed)})}


def encode(x, fmt: str, metadata: dict[str, str]) -> bytes:
    """Samples as ``.npy``, ``.safetensors`` (settings as JSON in metadata ``diffcore``) or ``.png`` (an image grid)."""
    x = x.detach().cpu().contiguous()
    if fmt == "npy":
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, x.numpy(), allow_pickle=False)
        return buf.getvalue()
    if fmt == "safetensors":
        import json

        from safetensors.torch import save

        # One metadata entry: safetensors writes several in hash-map order, which changes the
        # bytes from one process to the next.
        return save({"samples": x}, metadata={"diffcore": json.dumps(metadata, sort_keys=True)})
    from diffcore.tour import encode_png, image_grid, upscale

    return encode_png(upscale(image_grid(x), target=256, most=8))


def sample_task(
    prior: str,
    n: int = 16,
    steps: int = 50,
    sampler: str = "ddim",
    format: str = "npy",
    device: str | None = None,
    dtype: str | None = None,
):
    """Draw n samples per item (seed) from a prior: one .npy, .safetensors or .png grid each

    ``device`` and ``dtype`` choose where the network runs (:func:`diffcore.devices.build_prior`;
    ``DIFFCORE_DEVICE`` when unset); the seeds draw on the CPU, so results agree across devices.
    """
    from diffcore.registry import parse_spec

    if format not in FORMATS:
        raise DiffcoreError(f"task 'sample': format must be one of {', '.join(FORMATS)}, got {format!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise DiffcoreError(f"task 'sample': n and steps must be positive integers, got n={n!r}, steps={steps!r}")
    from diffcore.samplers import get_sampler

    name, sampler_options = parse_spec(sampler)
    get_sampler(name, **sampler_options)  # unknown samplers and options fail before any work
    from diffcore.devices import build_prior

    built = build_prior(prior, device=device, dtype=dtype)
    shape = tuple(built.sample_shape) if built.latent is None else None
    if format == "png" and shape is not None and not (len(shape) == 3 and shape[0] in (1, 3)):
        raise DiffcoreError(
            f"task 'sample': format 'png' takes image priors (C, H, W) with C = 1 or 3; prior {prior!r} draws {shape}: use npy or "
            "safetensors"
        )
    metadata = {"prior": prior, "sampler": sampler, "steps": str(steps), "n": str(n)}
    return SampleRun(built, n, steps, name, format, sampler_options, metadata)


class RegisteredTasks(Mapping[str, Task]):
    """Every registered task by name (an alias finds its task too), read from the plugin registry
    when used, so importing this module loads no plugin."""

    def __getitem__(self, name: str) -> Task:
        from diffcore.plugin_host import host

        registry = host().registry
        component = registry.components["task"].get(registry.aliases["task"].get(name, name))
        if component is None:
            raise KeyError(name)
        return Task(component.name, component.factory, component.summary, component.aliases)

    def __iter__(self) -> Iterator[str]:
        from diffcore.plugin_host import host

        return iter(host().registry.names("task"))

    def __len__(self) -> int:
        from diffcore.plugin_host import host

        return len(host().registry.components["task"])


TASKS: Mapping[str, Task] = RegisteredTasks()


def builtin_task(name: str) -> Task | None:
    """The registered task ``name`` (diffcore's or a plugin's, or an alias), or None."""
    return TASKS.get(name)
