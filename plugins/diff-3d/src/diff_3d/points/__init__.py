"""Diffusion directly on point clouds (PVD-style): procedural shapes, a point-voxel network, the prior ``zoo:shapes``.

Modules: ``shapes`` (spheres, boxes, tori, cylinders, cones sampled uniformly on their surfaces),
``network`` (the point-voxel denoiser), ``prior`` (:class:`~diff_3d.points.prior.PointCloudPrior`, a
diffcore prior with ``sample_shape = (P, 3)``), ``completion`` (shape completion by replacement),
``metrics`` (Chamfer, EMD, 1-NNA, COV, MMD), ``recipe`` / ``train`` / ``zoo`` / ``evaluate`` / ``card``
(the shipped prior), ``io`` (PLY), ``turntable`` (pictures), ``cli`` (``diffcore 3d points``),
``tour_section`` (the tour's ``3d-points``). Points are (N, P, 3), world z up, as the rest of diff-3d.
"""
