"""diff-3d's representations: ``image`` (2-D), ``voxel``, ``triplane`` and ``nerfacto`` (nerfstudio's hash-grid field)."""

from diff_3d.representations.image import ImageRepresentation
from diff_3d.representations.triplane import Triplane
from diff_3d.representations.volume import VolumeRepresentation
from diff_3d.representations.voxel import VoxelGrid

__all__ = ["ImageRepresentation", "Triplane", "VolumeRepresentation", "VoxelGrid"]
