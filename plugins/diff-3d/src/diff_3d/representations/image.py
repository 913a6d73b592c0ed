"""A free image: the simplest representation, for 2-D distillation (DreamFusion's and ProlificDreamer's 2-D checks).

``tanh(logits)`` in [-1, 1], the same picture for every camera: ``render(camera)`` repeats it for the
batch (``camera`` may be None for one image).

>>> ImageRepresentation(size=4, channels=1).render(None).shape
torch.Size([1, 1, 4, 4])
"""

from __future__ import annotations

import torch

from diffcore.errors import DiffcoreError


class ImageRepresentation(torch.nn.Module):
    """A ``channels`` x ``size`` x ``size`` image (``height`` x ``width`` when given) starting at grey, or at ``init_std`` noise
    from ``seed``."""

    def __init__(
        self,
        size: int = 32,
        channels: int = 3,
        *,
        height: int | None = None,
        width: int | None = None,
        init_std: float = 0.0,
        seed: int = 0,
    ):
        super().__init__()
        h, w = int(height or size), int(width or size)
        if h < 1 or w < 1 or int(channels) < 1:
            raise DiffcoreError(f"image size and channels must be positive, got {channels} x {h} x {w}")
        generator = torch.Generator().manual_seed(int(seed))
        self.logits = torch.nn.Parameter(float(init_std) * torch.randn(1, int(channels), h, w, generator=generator))

    def render(self, camera=None) -> torch.Tensor:
        n = 1 if camera is None else len(camera)
        return torch.tanh(self.logits).expand(n, -1, -1, -1)
