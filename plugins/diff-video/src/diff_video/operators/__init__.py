"""Video measurement operators (diffcore's operator contract, each with its SVD), registered through ``register_operators``.

- ``video-frames``: :class:`TemporalSubsampling`, some frames measured (interpolation, extension);
- ``video-sr``: :class:`FrameSuperResolution`, every frame average-pooled;
- ``video-inpaint``: :class:`FrameInpainting`, a box missing in some or all frames.
"""

from diff_video.operators.frames import TemporalSubsampling, chosen_frames
from diff_video.operators.inpainting import FrameInpainting
from diff_video.operators.superres import FrameSuperResolution

__all__ = ["FrameInpainting", "FrameSuperResolution", "TemporalSubsampling", "chosen_frames"]
