"""Posterior solvers: frozen dataclasses holding options, called as
``solver(prior, operator, y, *, steps, generator=None, start=None, t_start=None) -> x``.

Each returns one posterior sample per item of ``y``. ``needs_svd`` says whether the solver uses
the operator's SVD (``V``, ``Vt``, ``U``, ``Ut``, ``singulars``); ``needs_linear`` whether it
needs ``A_adjoint``/``A_pinv``. :func:`solvers_for` lists those that fit an operator.
"""

from __future__ import annotations

from diff_inverse.solvers.ddnm import DDNM, DDNMPlus
from diff_inverse.solvers.ddrm import DDRM
from diff_inverse.solvers.dps import DPS
from diff_inverse.solvers.ilvr import ILVR
from diff_inverse.solvers.langevin import Langevin
from diff_inverse.solvers.mcg import MCG
from diff_inverse.solvers.mcgdiff import MCGdiff
from diff_inverse.solvers.pigdm import PiGDM
from diff_inverse.solvers.projection import ScoreSDEProjection
from diff_inverse.solvers.red_diff import REDDiff
from diff_inverse.solvers.snips import SNIPS

SOLVERS = {
    "ddrm": DDRM,
    "ddnm": DDNM,
    "ddnm+": DDNMPlus,
    "pigdm": PiGDM,
    "dps": DPS,
    "mcgdiff": MCGdiff,
    "red-diff": REDDiff,
    "projection": ScoreSDEProjection,
    "ilvr": ILVR,
    "mcg": MCG,
    "langevin": Langevin,
    "snips": SNIPS,
}
ALIASES = {
    "ddrm": (),
    "ddnm": (),
    "ddnm+": ("ddnm-plus",),
    "pigdm": ("pgdm",),
    "dps": (),
    "mcgdiff": ("mcg-diff",),
    "red-diff": ("reddiff",),
    "projection": ("scoresde", "repaint"),
    "ilvr": (),
    "mcg": (),
    "langevin": ("jalal",),
    "snips": (),
}


def solvers_for(operator) -> list[str]:
    """The solver names that can take ``operator``."""
    svd = bool(getattr(operator, "has_svd", False))
    linear = bool(getattr(operator, "linear", False))
    return [n for n, cls in SOLVERS.items() if (svd or not cls.needs_svd) and (linear or not cls.needs_linear)]


__all__ = ["DDNM", "DDNMPlus", "DDRM", "DPS", "ILVR", "Langevin", "MCG", "MCGdiff", "PiGDM", "REDDiff", "SNIPS", "SOLVERS", "ScoreSDEProjection", "solvers_for"]
