"""``ns-train diff-in2n``: nerfacto on the synthetic capture with views edited in turn by a prior (in-process
iterations), and a capture folder nerfstudio cannot read stopping the command in one line, nothing written."""

from __future__ import annotations

import copy

import pytest
import torch

from diff_3d.editing.capture import synthetic_capture

SMALL = "nerfacto:max_res=32,num_levels=4,log2_hashmap_size=12,proposal_samples=[16, 16],samples=16"


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return synthetic_capture(tmp_path_factory.mktemp("in2n") / "capture", views=6, size=16)


def test_views_are_edited_in_turn_and_written_back_into_the_training_images(capture, tmp_path):
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    from diff_3d.ns.in2n import diff_in2n

    config = copy.deepcopy(diff_in2n.config)
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.output_dir = tmp_path / "outputs"
    config.max_num_iterations = 6
    config.pipeline.datamanager.data = capture
    config.pipeline.datamanager.train_num_rays_per_batch = 64
    config.pipeline.prior, config.pipeline.label = "zoo:textures", "brick"
    config.pipeline.edit_every, config.pipeline.edit_steps, config.pipeline.strength = 2, 4, 0.5
    config.pipeline.model.representation = SMALL
    config.set_timestamp()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    pipeline = trainer.pipeline
    before = pipeline.images().clone()
    for step in range(5):
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        loss, losses, metrics = trainer.train_iteration(step)
        assert torch.isfinite(loss)
    assert len(pipeline.edited) == 3 and len(set(pipeline.edited)) == 3  # steps 0, 2, 4: three different views of the round
    after = pipeline.images()
    changed = [i for i in range(after.shape[0]) if not torch.equal(after[i], before[i])]
    assert sorted(changed) == sorted(pipeline.edited)
    grey = after[pipeline.edited[0]]
    assert torch.allclose(grey[..., 0], grey[..., 1]) and torch.allclose(grey[..., 1], grey[..., 2])  # zoo:textures is one channel


def test_a_capture_folder_nerfstudio_cannot_read_stops_when_the_command_line_is_read(capture, tmp_path):
    from diff_3d.ns.in2n import In2NPipelineConfig, In2NTrainerConfig

    with pytest.raises(SystemExit, match="^diff-3d: .* is not a capture nerfstudio can read: it has no transforms.json"):
        In2NTrainerConfig(
            pipeline=In2NPipelineConfig(), data=tmp_path
        )  # what tyro builds from ns-train's --data, before any file is written
    with pytest.raises(SystemExit, match="^diff-3d: prior 'DiffusersUNetPrior' does not accept text conditioning"):
        In2NTrainerConfig(pipeline=In2NPipelineConfig(prior="zoo:textures", prompt="bricks"), data=capture)
    In2NTrainerConfig(pipeline=In2NPipelineConfig())  # no data given: nothing is checked (nerfstudio's discovery builds the defaults)
