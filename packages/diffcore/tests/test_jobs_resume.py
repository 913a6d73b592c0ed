"""A job killed with SIGKILL at random points ends, after a restart, with exactly the outputs of
an uninterrupted run: none missing, corrupt or duplicated, no temporary file left."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diffcore.jobs import JOB_DIR, TASKS, load_job, run_job
from diffcore.jobs.records import TMP_SUFFIX

torch.set_num_threads(1)
ITEMS = 60
KILLS = 5
JOB = f"""
task = "sample"
out = "{{out}}"
[items]
seeds = {ITEMS}
[options]
prior = "gmm:means=[[-4.0,0.0],[4.0,0.0]]"
n = 256
steps = 25
"""


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and JOB_DIR not in p.parts}


def start(job: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DIFFCORE_PLUGINS": ""}
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "diffcore.cli", "run", str(job)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def count(folder: Path) -> int:
    try:
        return sum(1 for name in os.listdir(folder) if name.endswith(".json"))
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_killed_at_random_points_then_resumed_equals_an_uninterrupted_run(tmp_path):
    seed = int(os.environ.get("DIFFCORE_KILL_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    (tmp_path / "ref.toml").write_text(JOB.format(out="ref"))
    (tmp_path / "job.toml").write_text(JOB.format(out="out"))
    reference = run_job(load_job(tmp_path / "ref.toml"), TASKS["sample"])
    assert reference.done == ITEMS
    expected = files(tmp_path / "ref")
    assert len(expected) == ITEMS

    records = tmp_path / "out" / JOB_DIR / "records"
    kills = []
    for _ in range(KILLS):
        before = count(records)
        target, jitter = before + rng.randint(1, 8), rng.uniform(0, 0.012)
        proc = start(tmp_path / "job.toml")
        deadline = time.monotonic() + 120
        while count(records) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(jitter)
        assert proc.poll() is None, f"the job ended before the kill (seed {seed}): {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        kills.append(count(records))
    assert 0 < kills[-1] < ITEMS, (seed, kills)

    finished = count(records)
    proc = start(tmp_path / "job.toml")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    done, skipped, failed = map(int, re.match(r"60 items: (\d+) done, (\d+) skipped, (\d+) failed", stdout).groups())
    assert (done, skipped, failed) == (ITEMS - finished, finished, 0), (seed, kills, stdout)

    out = tmp_path / "out"
    assert files(out) == expected, f"outputs differ from the uninterrupted run (seed {seed}, records after each kill {kills})"
    assert not [p for p in out.rglob("*") if p.name.endswith(TMP_SUFFIX)], "temporary files were left"
    assert not list((out / JOB_DIR / "failed").iterdir())
    assert sorted(p.stem for p in records.glob("*.json")) == sorted(Path(k).stem for k in expected)
    for record in records.glob("*.json"):
        assert list(json.loads(record.read_text())["outputs"]) == [record.stem + ".npy"]
