"""View-conditioned priors and novel views (issue 19): the contract ``Cond(image=reference, camera=relative pose)``.

Modules: ``scenes`` (procedural scenes of coloured primitives, ray-cast exactly: the data and the
ground truth), ``poses`` (relative poses), ``network`` and ``prior`` (the view-conditioned UNet and
its diffcore prior; the contract), ``data``, ``recipe``, ``train``, ``metrics``, ``evaluate``,
``card`` and ``zoo`` (``zoo:views``: pairs, training, measurements, the model card, the shipped
weights), ``sampler`` (3DiM's stochastic conditioning on several views), ``image_to_3d`` (one
reference view to a 3-D representation by score distillation through a view-conditioned prior).
Zero-1-to-3 itself is diffcore's ``zero123`` prior (:mod:`diffcore.adapters.zero123`). Importing
the package imports nothing.
"""
