"""diff-inverse: one pretrained diffusion prior, every inverse problem."""

from diff_inverse import operators

__all__ = ["operators"]
