"""The tour section shows the recorded duplication and erasure results."""

from __future__ import annotations

import csv
import json


def test_safety_tour_section(tmp_path):
    from diffcore.tour import run_tour

    run_tour(tmp_path, only=["safety"], quick=True)
    (section,) = json.loads((tmp_path / "report.json").read_text())["sections"]
    assert section["status"] == "ok", section["error"]
    rows = {int(r["copies"]): float(r["extraction_rate"]) for r in csv.DictReader((tmp_path / "safety" / "duplication-levels.csv").open())}
    assert rows[100] > rows[1]  # the recorded run shows the effect
    assert (tmp_path / "safety" / "duplication.png").stat().st_size > 1000
    rates = list(csv.DictReader((tmp_path / "safety" / "erasure-rates.csv").open()))
    assert len(rates) == 10 and (tmp_path / "safety" / "erasure-grid.png").is_file()
