"""diffcore: put a pretrained diffusion model to work.

The kernel of a plugin system: protocols (:mod:`diffcore.protocols`), schedules, samplers,
exact Gaussian-mixture priors, diffusers adapters, and the plugin host that finds components
registered by installed plugins.

>>> import torch, diffcore
>>> prior = diffcore.create("prior", "gmm", means=[[-4.0, 0.0], [4.0, 0.0]])
>>> x = diffcore.sample(prior, 8, steps=10, sampler="ddim", generator=torch.Generator().manual_seed(0))
>>> tuple(x.shape)
(8, 2)
"""

from importlib.metadata import PackageNotFoundError, version

from diffcore import conversions, priors, schedules
from diffcore.errors import DiffcoreError
from diffcore.hookspecs import hookimpl, hookspec
from diffcore.plugin_host import available, create, plugins
from diffcore.protocols import Cond, Prediction
from diffcore.samplers import sample

try:
    __version__ = version("diffcore")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Cond",
    "DiffcoreError",
    "Prediction",
    "available",
    "conversions",
    "create",
    "hookimpl",
    "hookspec",
    "plugins",
    "priors",
    "sample",
    "schedules",
]
