"""diff-3d: 2-D diffusion priors to 3-D by score distillation (SDS, SJC, VSD), on a CPU or as nerfstudio methods.

Modules: ``cameras`` (the convention, orbits, rays, random views), ``rendering`` (volume rendering),
``representations`` (image, voxel, triplane, nerfacto), ``distillers`` (sds, sjc, vsd), ``distill``
(the loop), ``analytic`` and ``scene`` (the exact view-conditioned prior of a known scene),
``validation``, ``export``, ``runs``, ``ns`` (the nerfstudio methods; the only modules importing
nerfstudio at import). See docs/3d.md. Importing the package imports nothing: the plugin's
registration stays cheap.
"""
