"""Hook implementations of diff-inverse (registration only; heavy imports stay in factories)."""

from diffcore import hookimpl


@hookimpl
def register_operators(register):
    from diff_inverse.operators import DenseLinear

    register("dense", DenseLinear, summary="Any matrix as a linear operator (SVD taken once)")
