"""``zoo:views``: the shipped view-conditioned prior, its folder and its loader.

The folder (``diff_3d/weights/views/`` in the package, or what :func:`diff_3d.views.train.train`
writes): ``config.json`` and ``network.safetensors`` (:mod:`diff_3d.views.prior`, float16, loaded
as float32), ``recipe.json`` (the run), ``metrics.json`` (:mod:`diff_3d.views.evaluate`) and
``README.md`` (the model card, :mod:`diff_3d.views.card`).
"""

from __future__ import annotations

import json
from pathlib import Path

from diffcore.errors import CheckpointError

NAME = "views"


def weights_folder() -> Path:
    """Where the shipped weights of ``zoo:views`` are."""
    return Path(__file__).resolve().parent.parent / "weights" / NAME


def read_json(folder, name: str) -> dict:
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.is_file() else {}


def load(path=None, *, device=None, dtype=None, clip_x0=None):
    """The ``zoo:views`` prior (a :class:`~diff_3d.views.prior.ViewPrior`) from ``path`` or the shipped folder."""
    from diff_3d.views.prior import load_view_prior

    folder = Path(path) if path is not None else weights_folder()
    if path is None and not (folder / "network.safetensors").is_file():
        raise CheckpointError("zoo:views has no shipped weights in this installation; train them with python -m diff_3d.views.train OUT")
    return load_view_prior(folder, device=device, dtype=dtype, clip_x0=clip_x0, name="zoo:views")
