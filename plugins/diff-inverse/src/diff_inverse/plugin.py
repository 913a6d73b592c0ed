"""Hook implementations of diff-inverse (registration only; heavy imports stay in factories)."""

from diffcore import hookimpl


@hookimpl
def register_operators(register):
    from diff_inverse import operators as ops

    register("dense", ops.DenseLinear, summary="Any matrix as a linear operator (SVD taken once)")
    register("inpaint", ops.Inpainting, summary="Inpainting: box, random pixels or a mask (tensor or image file); SVD")
    register("denoise", ops.Denoising, summary="Denoising: the identity; SVD")
    register("sr", ops.super_resolution, summary="Super-resolution by an integer factor: average pooling or bicubic; SVD")
    register("blur", ops.blur, summary="Deblurring: Gaussian (separable, zero padding) or any kernel (FFT, circular); SVD")
    register("motion", ops.motion_blur, summary="Linear motion blur (length, angle) through the FFT (circular); SVD")
    register("colorize", ops.Colorization, summary="Colorization: mean over the colour channels; SVD")
    register("cs", ops.CompressedSensing, summary="Compressed sensing with random orthogonal rows; SVD")
    register("mri", ops.MRI, summary="MRI: 2-D Fourier undersampling (random, equispaced, radial masks); SVD")
    register("ct", ops.CT, summary="Sparse-view CT: parallel-beam Radon transform")
    register("phase", ops.PhaseRetrieval, summary="Phase retrieval: oversampled Fourier magnitude (nonlinear)")
    register("jpeg", ops.JPEG, summary="JPEG compression (nonlinear, not differentiable)")
    register("deepinv", ops.deepinv_operator, summary="Any deepinv.physics operator (needs the deepinv extra)")


@hookimpl
def register_solvers(register):
    from diff_inverse.solvers import ALIASES, SOLVERS

    for name, cls in SOLVERS.items():
        register(name, cls, aliases=ALIASES[name])


@hookimpl
def register_commands(cli):
    from diff_inverse.cli import inverse

    cli.add_command(inverse, "inverse")


@hookimpl
def register_tour(register):
    from diff_inverse.tour_section import section

    register(
        "inverse",
        section,
        summary="One shipped prior solving inpainting, super-resolution, deblurring and denoising; the exact GMM benchmark",
    )
