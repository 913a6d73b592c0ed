"""Scale-out with `accelerate launch`: the same job on 1 or 2 processes writes the same bytes.

The 2 processes run on CPU with the gloo backend (`--multi_gpu` selects accelerate's torchrun
launcher; with no visible GPU, diffcore asks accelerate for a CPU process group).
"""

from __future__ import annotations

import json
import socket

import pytest

from diffcore.jobs import JOB_DIR

pytest.importorskip("accelerate")

JOB = """
task = "sample"
out = "{out}"
[items]
seeds = 12
[options]
prior = "gmm:means=[[-4.0,0.0],[4.0,0.0]]"
n = 64
steps = 10
format = "safetensors"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outputs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_same_outputs_on_one_or_two_processes(tmp_path, run_command, console_script):
    env = {"HF_HOME": str(tmp_path / "hf"), "CUDA_VISIBLE_DEVICES": "", "DIFFCORE_PLUGINS": ""}
    for name in ("one", "two"):
        (tmp_path / f"{name}.toml").write_text(JOB.format(out=name))
    one = run_command([str(console_script("diffcore")), "run", "one.toml"], cwd=tmp_path, env=env)
    assert one.stdout.startswith("12 items: 12 done, 0 skipped, 0 failed")

    launch = [str(console_script("accelerate")), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    two = run_command([*launch, "-m", "diffcore.cli", "run", "two.toml"], cwd=tmp_path, env=env, timeout=180)
    summaries = [line for line in two.stdout.splitlines() if "items:" in line]
    assert len(summaries) == 1 and summaries[0].startswith("12 items: 12 done, 0 skipped, 0 failed"), two.stdout  # rank 0 prints

    expected = outputs(tmp_path / "one")
    assert sorted(expected) == [f"seed-{i:06d}.safetensors" for i in range(12)]
    assert outputs(tmp_path / "two") == expected
    ranks = {p.stem: json.loads(p.read_text())["rank"] for p in (tmp_path / "two" / JOB_DIR / "records").glob("*.json")}
    assert ranks == {f"seed-{i:06d}": i % 2 for i in range(12)}  # each item written by exactly one process
    shares = [json.loads((tmp_path / "two" / JOB_DIR / "ranks" / f"{r}.json").read_text()) for r in (0, 1)]
    assert [(s["done"], s["finished"]) for s in shares] == [(6, True), (6, True)]

    # resuming on another number of processes: everything is finished
    again = run_command([str(console_script("diffcore")), "run", "two.toml"], cwd=tmp_path, env=env)
    assert again.stdout.startswith("12 items: 0 done, 12 skipped, 0 failed")
    assert outputs(tmp_path / "two") == expected
