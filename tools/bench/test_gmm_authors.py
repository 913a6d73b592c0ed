"""tools/bench/gmm_authors.py: the comparison with the authors' figures runs and reads back right."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _module():
    spec = importlib.util.spec_from_file_location("gmm_authors", HERE / "gmm_authors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verdicts():
    m = _module()
    assert m.verdict(1.0, 2.0, 0.5) == "yes, lower"
    assert m.verdict(2.4, 2.0, 0.5) == "yes, within"
    assert m.verdict(2.6, 2.0, 0.5) == "**no, higher**"
    assert m.verdict(float("nan"), 2.0, 0.5) == "no result"


def test_quick_run_and_report(capsys):
    m = _module()
    torch.manual_seed(0)
    run = m.measure([8], [1], [20], problems=2, samples=200, block_seeds=2, log=lambda message: None)
    assert set(run["problem"]) == {"8,1,20"} and len(run["block"]["8,1,20"]) == 2
    blocks = run["block"]["8,1,20"]
    assert blocks[0]["prior"] != blocks[1]["prior"]  # two block seeds: two shared mixtures
    text = m.report([run])
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| 8 |")]
    assert [r[3].strip() for r in rows] == ["mcgdiff", "ddrm", "dps", "prior"]
    for r in rows[:3]:
        low, high = (float(v) for v in r[5].split("–"))
        assert low <= high and r[6].strip() and r[7].strip() in ("yes, lower", "yes, within", "**no, higher**")
    assert rows[3][6].strip() == "7.60"  # the authors' prior column
