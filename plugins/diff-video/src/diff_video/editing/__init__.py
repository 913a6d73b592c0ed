"""Zero-shot video editing with an image prior: DDIM inversion of the frames, then an edit towards a target, in chunks.

Editors (one file each): ``per-frame`` (:class:`PerFrameEditor`), ``cross-frame``
(Text2Video-Zero / vid2vid-zero, :class:`CrossFrameEditor`), ``pix2video``
(:class:`Pix2VideoEditor`), ``fatezero`` (:class:`FateZeroEditor`), ``tune-a-video``
(:class:`TuneAVideoEditor`), ``video-p2p`` (:class:`VideoP2PEditor`). :func:`edit_video` runs any of
them on a video with any diffusers image prior (class-conditional zoo priors take a class index or
name as the target, Stable Diffusion a prompt); :mod:`diff_video.editing.metrics` measures the
result. See docs/video.md, "Editing videos".
"""

from diff_video.editing.cross_frame import CrossFrameEditor
from diff_video.editing.engine import Editor, EditRun, EditSettings, condition, edit_video
from diff_video.editing.fatezero import FateZeroEditor
from diff_video.editing.inversion import ddim_denoise, ddim_invert, edit_times
from diff_video.editing.per_frame import PerFrameEditor
from diff_video.editing.pix2video import Pix2VideoEditor
from diff_video.editing.streamed import StreamedCrossFrame
from diff_video.editing.tune_a_video import TuneAVideoEditor
from diff_video.editing.video_p2p import VideoP2PEditor
from diffcore.errors import DiffcoreError

EDITORS = {e.name: e for e in (PerFrameEditor, Pix2VideoEditor, CrossFrameEditor, FateZeroEditor, TuneAVideoEditor, VideoP2PEditor)}


def make_editor(name: str, **options) -> Editor:
    """The editor called ``name`` with its ``options`` (e.g. ``make_editor("pix2video", weight=2.0)``)."""
    if name not in EDITORS:
        raise DiffcoreError(f"unknown editor {name!r}; known: {', '.join(EDITORS)}")
    return EDITORS[name](**options)


__all__ = [
    "EDITORS",
    "CrossFrameEditor",
    "EditRun",
    "EditSettings",
    "Editor",
    "FateZeroEditor",
    "PerFrameEditor",
    "Pix2VideoEditor",
    "StreamedCrossFrame",
    "TuneAVideoEditor",
    "VideoP2PEditor",
    "condition",
    "ddim_denoise",
    "ddim_invert",
    "edit_times",
    "edit_video",
    "make_editor",
]
