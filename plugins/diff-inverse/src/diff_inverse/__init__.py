"""diff-inverse: one pretrained diffusion prior, every inverse problem."""

from diff_inverse import operators, solvers
from diff_inverse.solve import solve

__all__ = ["operators", "solve", "solvers"]
