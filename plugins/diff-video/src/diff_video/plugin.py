"""Hook implementations of diff-video (registration only; heavy imports stay in factories)."""

from diffcore import hookimpl  # noqa: F401
