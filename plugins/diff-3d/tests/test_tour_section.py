"""The tour section runs (quick mode) and reports a recovered scene, labelled digits and two GIFs."""

import json


def test_the_section_in_quick_mode(tmp_path):
    from diffcore.tour import run_tour

    run_tour(tmp_path, only=["3d"], quick=True)
    (section,) = json.loads((tmp_path / "report.json").read_text())["sections"]
    assert section["status"] == "ok", section["error"]
    metrics = {name: value["value"] for name, value in section["metrics"].items()}
    assert metrics["held-out PSNR of the recovered scene"] > 14  # a blank grid starts near 9 dB
    assert metrics["2-D digits labelled as asked"] >= 0.75
    assert sorted(p.name for p in (tmp_path / "3d").glob("*.gif")) == ["digit-3d.gif", "recovered-scene.gif"]
    assert "recovered-scene.gif" in (tmp_path / "index.html").read_text()
