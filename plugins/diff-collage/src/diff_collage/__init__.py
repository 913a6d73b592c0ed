"""diff-collage: large content, in parallel, from a diffusion prior trained on small windows.

:func:`collage` turns a window prior and a graph of windows (:mod:`diff_collage.graphs`) into a
prior on the large canvas (DiffCollage, MultiDiffusion or Mixture of Diffusers); every diffcore
sampler and solver runs on it. :func:`outpaint` is the sequential baseline and
:func:`seam_score` measures how visible the window borders are. Registered as the prior
``collage`` and the command ``diffcore collage``.
"""

from diff_collage import graphs
from diff_collage.conds import segments
from diff_collage.outpaint import outpaint
from diff_collage.prior import METHODS, CollagePrior, collage
from diff_collage.seams import seam_score

__all__ = ["METHODS", "CollagePrior", "collage", "graphs", "outpaint", "seam_score", "segments"]
