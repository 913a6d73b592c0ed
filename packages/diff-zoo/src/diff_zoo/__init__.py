"""diff-zoo: small pretrained diffusion priors that ship with diffcore's code.

Registered as diffcore priors ``zoo:digits``, ``zoo:patches``, ``zoo:textures`` and
``zoo:phantoms`` (see ``diffcore zoo list``). Each is a diffusers ``UNet2DModel`` trained by a
recipe in :mod:`diff_zoo.recipes` on data that :mod:`diff_zoo.data` makes from installed
packages or procedurally; ``diffcore zoo train NAME --out DIR`` retrains one, and
``python -m diff_zoo.train_all --device cuda --out DIR`` trains all four.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("diff-zoo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

NAMES = ("digits", "patches", "textures", "phantoms")

__all__ = ["NAMES", "__version__"]
