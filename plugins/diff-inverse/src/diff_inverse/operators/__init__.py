"""Measurement operators. See :mod:`diff_inverse.operators.base` for the contract.

Image operators take ``x_shape = (C, H, W)`` first, then keyword options; ``sigma_y``,
``noise`` (``"gaussian"`` or ``"poisson"``) and ``rate`` set the noise. The pure tensor kernels
live in :mod:`diff_inverse.operators.functional`.
"""

from diff_inverse.operators.base import LinearOperator, Operator
from diff_inverse.operators.blur import ConvolutionBlur, GaussianBlur, blur, motion_blur
from diff_inverse.operators.colorization import Colorization
from diff_inverse.operators.compressed_sensing import CompressedSensing
from diff_inverse.operators.ct import CT
from diff_inverse.operators.deepinv_adapter import DeepinvLinear, DeepinvNonlinear, deepinv_operator
from diff_inverse.operators.dense import DenseLinear
from diff_inverse.operators.inpainting import Denoising, Inpainting
from diff_inverse.operators.jpeg import JPEG
from diff_inverse.operators.mri import MRI
from diff_inverse.operators.phase import PhaseRetrieval
from diff_inverse.operators.superres import AveragePooling, Bicubic, super_resolution

__all__ = [
    "CT",
    "JPEG",
    "MRI",
    "AveragePooling",
    "Bicubic",
    "Colorization",
    "CompressedSensing",
    "ConvolutionBlur",
    "DeepinvLinear",
    "DeepinvNonlinear",
    "Denoising",
    "DenseLinear",
    "GaussianBlur",
    "Inpainting",
    "LinearOperator",
    "Operator",
    "PhaseRetrieval",
    "blur",
    "deepinv_operator",
    "motion_blur",
    "super_resolution",
]
