"""``ns-train diff-zero123``: a reference image through a tiny view-conditioned prior (in-process iterations), and the
bad input that stops the command in one line before nerfstudio writes anything."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diff_3d.views.network import NetworkConfig, ViewUNet
from diff_3d.views.prior import ViewPrior, save_view_prior

SIZE = 16


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from PIL import Image

    from diff_3d.cameras import orbit_cameras
    from diff_3d.views.scenes import PrimitiveScene

    folder = tmp_path_factory.mktemp("zero123")
    config = NetworkConfig(
        size=SIZE, block_out_channels=(8, 16), layers_per_block=1, attention=(False, True), attention_head_dim=8, norm_num_groups=4
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        save_view_prior(ViewPrior(ViewUNet(config)), folder / "prior")
    scene = PrimitiveScene(kinds=("sphere",), centers=[[0.0, 0.0, 0.0]], sizes=[[0.5, 0.5, 0.5]], angles=[0.0], albedos=[[0.8, -0.6, -0.6]])
    view = scene.render(orbit_cameras(torch.tensor([0.0]), 20.0, 2.2, fov=50.0, size=32))[0]
    pixels = ((view + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(folder / "reference.png")
    return folder


def test_iterations_score_renders_through_the_reference_and_fit_the_reference_view(files, tmp_path):
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    from diff_3d.ns.zero123 import diff_zero123, read_reference

    config = copy.deepcopy(diff_zero123.config)
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.output_dir = tmp_path / "outputs"
    config.max_num_iterations = 4
    model_config = config.pipeline.model
    model_config.prior = f"zoo:views:path={files / 'prior'}"
    model_config.image = files / "reference.png"
    model_config.representation = "nerfacto:max_res=32,num_levels=4,log2_hashmap_size=12,proposal_samples=[16, 16],samples=16"
    config.pipeline.datamanager.resolution = config.pipeline.datamanager.eval_resolution = SIZE
    config.pipeline.datamanager.eval_views = 2
    config.set_timestamp()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    model = trainer.pipeline.model
    before = [p.detach().clone() for p in model.representation.parameters()]
    for step in range(2):
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        loss, losses, metrics = trainer.train_iteration(step)
    assert {"distillation_loss", "reference_loss"} <= set(losses) and torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.representation.parameters()))
    prior, cond = model.prior_and_condition()
    assert cond is None and prior.accepts == frozenset({"camera"})
    assert torch.equal(prior.reference, read_reference(files / "reference.png", (3, SIZE, SIZE)))
    camera = model._reference_camera
    assert camera.width == SIZE and torch.allclose(camera.camera_to_worlds[0, :3, 3].norm(), torch.tensor(2.2))


def _ns_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    ns_train = Path(sys.executable).with_name("ns-train")
    command = [str(ns_train), "diff-zero123", "--machine.device-type", "cpu", "--output-dir", str(cwd / "outputs"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


def test_bad_input_stops_in_one_line_when_the_command_line_is_read(files, tmp_path):
    from diff_3d.ns.zero123 import Zero123ModelConfig

    with pytest.raises(SystemExit, match=r"^diff-3d: gmm:means=\[\[0.0,0.0\]\] is not view-conditioned \(it accepts nothing"):
        Zero123ModelConfig(prior="gmm:means=[[0.0,0.0]]", image=files / "reference.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(SystemExit, match="^diff-3d: cannot read the reference image"):
        Zero123ModelConfig(prior=f"zoo:views:path={files / 'prior'}", image=tmp_path / "broken.png")
    Zero123ModelConfig(prior="gmm:means=[[0.0,0.0]]")  # no image: nothing is checked (nerfstudio's discovery builds the defaults)


def test_ns_train_with_a_prior_without_camera_conditioning_writes_nothing(files, tmp_path):
    ns_train = Path(sys.executable).with_name("ns-train")
    command = [str(ns_train), "diff-zero123", "--machine.device-type", "cpu", "--output-dir", str(tmp_path / "outputs")]
    command += ["--pipeline.model.prior", "gmm:means=[[0.0,0.0]]", "--pipeline.model.image", str(files / "reference.png")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("diff-3d: gmm:means=[[0.0,0.0]] is not view-conditioned (it accepts nothing (unconditional))"), done.stderr[
        -2000:
    ]
    assert not (tmp_path / "outputs").exists() and not any(tmp_path.iterdir())
