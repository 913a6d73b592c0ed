"""gpu_summary.py puts the runs of one GPU check side by side and marks the rows over the 5 % goal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_summary import summary  # noqa: E402


def _sampler_run(options, ratio, ms):
    rows = [
        {
            "sampler": "ddim",
            "batch": 4,
            "calls": 20,
            "sampler_s": 1.0,
            "network_s": 1.0,
            "ratio": ratio,
            "ms_per_call": ms,
            "peak_mib": 10.0,
        }
    ]
    return {"title": "t", "options": options, "device": "NVIDIA H200", "torch": "2.11.0", "rows": rows}


def _solver_run(options, ratio):
    rows = [
        {"solver": "dps", "operator": "sr x2", "calls": 20, "total": 1.0, "network": 0.8, "backward": 0.4, "overhead": 0.2, "ratio": ratio}
    ]
    return {"options": options, "device": "NVIDIA H200", "torch": "2.11.0", "rows": rows, "calibration": []}


def test_runs_side_by_side_with_the_goal_marked(tmp_path):
    (tmp_path / "sampler_plain.json").write_text(json.dumps(_sampler_run("plain", 1.34, 17.6)))
    (tmp_path / "sampler_compile.json").write_text(json.dumps({**_sampler_run("compile", 1.02, 9.1), "fallbacks": ["no CUDA here"]}))
    (tmp_path / "solver_plain.json").write_text(json.dumps(_solver_run("plain", 15.2)))
    text = summary(tmp_path)
    assert "NVIDIA H200, torch 2.11.0" in text
    sampler_row = next(line for line in text.splitlines() if line.startswith("| ddim | 4 |"))
    assert sampler_row == "| ddim | 4 | 1.340 (over) | 17.60 | 1.020 | 9.10 |"  # plain first, then compile
    solver_row = next(line for line in text.splitlines() if line.startswith("| dps |"))
    assert solver_row == "| dps | sr x2 | 15.2 (over) | 0.800 |"
    assert "- compile: no CUDA here" in text.splitlines()


def test_an_empty_folder_says_so(tmp_path):
    assert "No benchmark results" in summary(tmp_path)
