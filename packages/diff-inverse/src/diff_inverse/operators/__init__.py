"""Measurement operators. See :mod:`diff_inverse.operators.base` for the contract."""

from diff_inverse.operators.base import LinearOperator
from diff_inverse.operators.dense import DenseLinear

__all__ = ["DenseLinear", "LinearOperator"]
