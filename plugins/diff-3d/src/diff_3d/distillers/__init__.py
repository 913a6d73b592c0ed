"""diff-3d's distillers, one algorithm per file: ``sds`` (DreamFusion), ``sjc`` (Score Jacobian Chaining), ``vsd`` (ProlificDreamer)."""

from diff_3d.distillers.sds import SDS
from diff_3d.distillers.sjc import SJC
from diff_3d.distillers.vsd import VSD

__all__ = ["SDS", "SJC", "VSD"]
