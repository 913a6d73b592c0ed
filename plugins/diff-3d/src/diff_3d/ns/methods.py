"""The nerfstudio methods ``diff-sds``, ``diff-sjc`` and ``diff-vsd`` (entry point group ``nerfstudio.method_configs``).

Each trains a representation (``nerfacto`` by default) from a diffcore prior chosen by spec::

    ns-train diff-sds --pipeline.model.prior stable-diffusion:path=DIR --pipeline.model.prompt "a hamburger"
    ns-train diff-vsd --pipeline.model.prior zoo:digits --pipeline.model.label 3 --machine.device-type cpu

On a CPU, pass ``--machine.device-type cpu``: the field and the proposal networks use the torch
implementation, never nerfacc's occupancy grid or gsplat (which need CUDA). nerfstudio's discovery
imports this module without isolation, so it does nothing that can fail at import beyond importing
nerfstudio's config classes and diff-3d's own modules; the prior is built when training starts.
"""

from __future__ import annotations

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from diff_3d.ns.datamanager import DistillCamerasDataManagerConfig
from diff_3d.ns.model import DistillModelConfig

DESCRIPTIONS = {
    "sds": "diff-3d: score distillation sampling (DreamFusion) from any diffcore prior into a nerfacto field",
    "sjc": "diff-3d: Score Jacobian Chaining (PAAS) from any diffcore prior into a nerfacto field",
    "vsd": "diff-3d: variational score distillation (ProlificDreamer) from any diffcore prior into a nerfacto field",
}


def method(distiller: str) -> MethodSpecification:
    """The ``diff-<distiller>`` method: its trainer, pipeline, model and optimisers."""
    config = TrainerConfig(
        method_name=f"diff-{distiller}",
        experiment_name="",
        steps_per_eval_batch=500,
        steps_per_eval_image=250,
        steps_per_save=500,
        max_num_iterations=5000,
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(
            datamanager=DistillCamerasDataManagerConfig(),
            model=DistillModelConfig(distiller=distiller, eval_num_rays_per_chunk=1 << 14),
        ),
        optimizers={
            "proposal_networks": {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": None},
            "fields": {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": None},
        },
        viewer=ViewerConfig(),
        vis="viewer",
    )
    return MethodSpecification(config=config, description=DESCRIPTIONS[distiller])


diff_sds = method("sds")
diff_sjc = method("sjc")
diff_vsd = method("vsd")
