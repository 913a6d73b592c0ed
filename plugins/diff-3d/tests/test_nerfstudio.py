"""The nerfstudio methods in-process: a few trainer iterations, the loss dict, the step callback, a checkpoint exported."""

import copy

import pytest
import torch

from diffcore.errors import DiffcoreError


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from diff_3d.ns.methods import diff_sds

    config = copy.deepcopy(diff_sds.config)
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.output_dir = tmp_path_factory.mktemp("outputs")
    config.max_num_iterations = 6
    config.pipeline.model.prior = "analytic-scene:size=16"
    config.pipeline.model.representation = "nerfacto:max_res=32,num_levels=4,log2_hashmap_size=12,proposal_samples=[16, 16],samples=16"
    config.pipeline.datamanager.resolution = config.pipeline.datamanager.eval_resolution = 16
    config.pipeline.datamanager.fov = (50.0, 50.0)
    config.pipeline.datamanager.eval_views = 2
    config.set_timestamp()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    return trainer


def test_iterations_give_the_distillation_and_the_proposal_losses(trainer):
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    model = trainer.pipeline.model
    before = [p.detach().clone() for p in model.representation.parameters()]
    for step in range(3):
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        loss, losses, metrics = trainer.train_iteration(step)
    assert set(losses) == {"distillation_loss", "interlevel_loss", "distortion_loss"} and torch.isfinite(loss)
    assert {"t", "weight", "grad_norm"} <= set(metrics)
    assert model.step == 2 and model.total_steps == 6
    assert any(not torch.equal(a, b) for a, b in zip(before, model.representation.parameters()))
    assert model.prior_and_condition()[0].size == 16  # built by spec through the registry, once


def test_the_viewer_render_and_the_export_read_the_same_field(trainer, tmp_path):
    from diff_3d.cameras import CameraSampler
    from diff_3d.ns.cameras import to_nerfstudio
    from diff_3d.runs import load_nerfstudio

    model = trainer.pipeline.model
    cam = CameraSampler(size=8, fov=(50.0, 50.0)).turntable(1)
    model.eval()
    viewer = model.get_outputs_for_camera(to_nerfstudio(cam))
    ours = model.representation.render_outputs(cam)
    assert torch.allclose(viewer["rgb"].permute(2, 0, 1), (ours.rgb[0] + 1) / 2, atol=1e-5)
    model.train()
    trainer.config.save_config()
    trainer.save_checkpoint(5)
    config_path = trainer.config.get_base_dir() / "config.yml"
    loaded = load_nerfstudio(config_path)
    for (name, a), b in zip(model.representation.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_run_without_its_checkpoint_is_a_one_line_error(trainer, tmp_path):
    from diff_3d.runs import load_nerfstudio

    config = copy.deepcopy(trainer.config)
    config.output_dir = tmp_path
    config.set_timestamp()
    config.save_config()
    with pytest.raises(DiffcoreError, match=r"no checkpoint \(step-\*\.ckpt\) for"):
        load_nerfstudio(config.get_base_dir() / "config.yml")


def test_bad_model_settings_stop_with_one_line(trainer):
    from diff_3d.ns.model import DistillModel

    config = copy.deepcopy(trainer.config.pipeline.model)
    config.prior, config.prompt = "zoo:digits", "a cat"
    model = DistillModel(config, scene_box=trainer.pipeline.datamanager.train_dataset.scene_box, num_train_data=1)
    with pytest.raises(SystemExit, match="diff-3d: prior 'DiffusersUNetPrior' does not accept text conditioning"):
        model.prior_and_condition()
    config.representation = "image"
    with pytest.raises(SystemExit, match="does not render rays; use nerfacto, voxel or triplane"):
        DistillModel(config, scene_box=trainer.pipeline.datamanager.train_dataset.scene_box, num_train_data=1)
