"""Posterior solvers: frozen dataclasses holding options, called as
``solver(prior, operator, y, *, steps, generator=None, start=None, t_start=None) -> x``.

Each returns one posterior sample per item of ``y``. Each declares what it needs of an operator
(``needs_svd``: the SVD ``V``, ``Vt``, ``U``, ``Ut``, ``singulars``; ``needs_linear``:
``A_adjoint``/``A_pinv``; ``noiseless_only``; ``needs_differentiable``), and :func:`fits` (module
:mod:`diff_inverse.solvers.fit`) is the one rule that reads those declarations: :func:`solvers_for`
lists the registered solvers, a plugin's included, that fit an operator.
"""

from __future__ import annotations

from diff_inverse.solvers.daps import DAPS
from diff_inverse.solvers.ddnm import DDNM, DDNMPlus
from diff_inverse.solvers.ddrm import DDRM
from diff_inverse.solvers.diffpir import DiffPIR
from diff_inverse.solvers.dps import DPS
from diff_inverse.solvers.fit import Needs, fits, refusal, solvers_for
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
    "diffpir": DiffPIR,
    "daps": DAPS,
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
    "diffpir": (),
    "daps": (),
    "projection": ("scoresde", "repaint"),
    "ilvr": (),
    "mcg": (),
    "langevin": ("jalal",),
    "snips": (),
}


__all__ = [
    "DAPS",
    "DDNM",
    "DDNMPlus",
    "DDRM",
    "DPS",
    "DiffPIR",
    "ILVR",
    "Langevin",
    "MCG",
    "MCGdiff",
    "Needs",
    "PiGDM",
    "REDDiff",
    "SNIPS",
    "SOLVERS",
    "ScoreSDEProjection",
    "fits",
    "refusal",
    "solvers_for",
]
