"""diff-3d inside nerfstudio: the methods ``diff-sds``, ``diff-sjc``, ``diff-vsd``, ``diff-zero123`` and ``diff-in2n``.

Entry point group ``nerfstudio.method_configs``. Only these modules import nerfstudio. ``methods``
builds the ``MethodSpecification`` objects that nerfstudio's discovery loads; ``model`` holds the
representation and calls the distiller in ``get_loss_dict``; ``datamanager`` draws random orbit
cameras from a seeded generator; ``cameras`` converts between diffcore's and nerfstudio's camera
objects (one convention); ``zero123`` is one reference image to 3-D through a view-conditioned
prior; ``in2n`` edits a capture by Instruct-NeRF2NeRF's iterative dataset update.
"""
