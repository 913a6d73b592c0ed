"""Shape checks shared by the image operators."""

from __future__ import annotations

from diffcore.errors import ShapeError


def image_shape(x_shape) -> tuple[int, int, int]:
    """``x_shape`` as ``(C, H, W)`` of positive ints, or a :class:`ShapeError`."""
    try:
        shape = tuple(int(v) for v in x_shape)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"x_shape must be (C, H, W), got {x_shape!r}") from exc
    if len(shape) != 3 or min(shape) < 1 or any(isinstance(v, bool) for v in x_shape):
        raise ShapeError(f"x_shape must be (C, H, W) with positive sizes, got {x_shape!r}")
    return shape
