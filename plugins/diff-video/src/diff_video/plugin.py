"""Hook implementations of diff-video (registration only; heavy imports stay in factories)."""

from __future__ import annotations

from diffcore import hookimpl


def moving_digits(path=None, frames=None, device=None, dtype=None, clip_x0=None):
    """Class-conditional 32x32 clips of a moving scikit-learn digit (8 to 16 frames): zoo:digits inflated to space-time"""
    from diff_video.zoo import load

    return load(path=path, frames=frames, device=device, dtype=dtype, clip_x0=clip_x0)


def per_frame(base, frames=8, device=None, dtype=None):
    """Any image prior applied to each frame on its own: the frames-independent video baseline"""
    from diff_video.per_frame import PerFrame
    from diffcore.devices import build_prior

    return PerFrame(build_prior(base, device=device, dtype=dtype), frames)


def inflated(base, frames=8, seed=0, convolution=True, attention=True, kernel=3, head_dim=32, max_frames=64, device=None, dtype=None):
    """A diffusers image-UNet prior inflated to space-time (zero-initialised temporal layers: the image model per frame until trained)"""
    from diff_video.prior import inflated_prior
    from diffcore.devices import build_prior

    settings = dict(convolution=convolution, attention=attention, kernel=kernel, head_dim=head_dim, max_frames=max_frames)
    prior = inflated_prior(build_prior(base, device=device, dtype=dtype), frames=frames, seed=seed, **settings)
    prior.name = f"inflated:{base}"
    return prior


@hookimpl
def register_priors(register):
    register("zoo:moving-digits", moving_digits)
    register("per-frame", per_frame)
    register("inflated", inflated)


@hookimpl
def register_operators(register):
    from diff_video import operators as ops

    register("video-frames", ops.TemporalSubsampling, summary="Temporal subsampling: some frames measured (interpolation, extension); SVD")
    register(
        "video-sr", ops.FrameSuperResolution, summary="Per-frame super-resolution: every frame average-pooled by an integer factor; SVD"
    )
    register("video-inpaint", ops.FrameInpainting, summary="Per-frame inpainting: a box missing in some or all frames; SVD")


@hookimpl
def register_solvers(register):
    from diff_video.reconstruction_guidance import ReconstructionGuidance
    from diff_video.replacement import Replacement

    register("reconstruction-guidance", ReconstructionGuidance, summary="Reconstruction guidance with replacement (Ho et al. 2022, eq. 7)")
    register(
        "replacement", Replacement, summary="Replacement: the measured part set from y at each step (Song et al. 2021; Ho et al. 2022)"
    )


@hookimpl
def register_commands(cli):
    from diff_video.cli import video

    cli.add_command(video, "video")


@hookimpl
def register_tour(register):
    from diff_video.tour_section import section

    register(
        "video",
        section,
        summary="zoo:moving-digits: clips generated, extended and interpolated by reconstruction guidance; a video edited by Pix2Video",
    )
