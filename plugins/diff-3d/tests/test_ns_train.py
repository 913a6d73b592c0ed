"""``ns-train diff-sds`` end to end: the tiny random Stable Diffusion, a prompt, 20 iterations on the CPU, a checkpoint, an export."""

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from diffcore.cli import cli
from diffcore.testing import save_tiny_stable_diffusion


def test_ns_train_diff_sds_with_a_text_prior(tmp_path):
    model = save_tiny_stable_diffusion(tmp_path / "sd")
    ns_train = Path(sys.executable).with_name("ns-train")
    command = [
        str(ns_train),
        "diff-sds",
        "--machine.device-type",
        "cpu",
        "--pipeline.model.prior",
        f"stable-diffusion:path={model}",
        "--pipeline.model.prompt",
        "a photo of a cat",
        "--pipeline.model.distiller",
        "sds:guidance_scale=7.5",
        "--pipeline.model.representation",
        "nerfacto:max_res=32,num_levels=4,log2_hashmap_size=12,proposal_samples=[16, 16],samples=16",
        "--pipeline.datamanager.resolution",
        "16",
        "--pipeline.datamanager.eval-resolution",
        "16",
        "--max-num-iterations",
        "20",
        "--steps-per-save",
        "20",
        "--vis",
        "tensorboard",
        "--output-dir",
        str(tmp_path / "outputs"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (config,) = (tmp_path / "outputs").glob("diff-sds/*/config.yml")
    (checkpoint,) = config.parent.glob("nerfstudio_models/step-*.ckpt")
    assert checkpoint.name == "step-000000019.ckpt"
    from diff_3d.export import density_grid
    from diff_3d.runs import load_nerfstudio

    level = float(density_grid(load_nerfstudio(config), 16)[0].median())  # a barely trained field: cut it at its median density
    res = CliRunner().invoke(
        cli,
        [
            "3d",
            "export",
            "--config",
            str(config),
            "--resolution",
            "16",
            "--threshold",
            f"{level:.6f}",
            "--frames",
            "2",
            "--size",
            "8",
            "--formats",
            "ply",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["faces"] > 0 and (config.parent / "export" / "turntable.gif").is_file()
