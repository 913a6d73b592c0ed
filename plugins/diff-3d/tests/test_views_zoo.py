"""The shipped zoo:views: its weights load by name, and its model card is what the card module renders from its records."""

from __future__ import annotations

import torch

from diff_3d.views.data import pairs, split_generator
from diffcore.protocols import Cond


def test_the_shipped_zoo_views_loads_by_name_and_its_card_is_what_render_card_writes():
    import json

    import diffcore
    from diff_3d.views.card import render_card
    from diff_3d.views.zoo import weights_folder

    folder = weights_folder()
    assert (folder / "network.safetensors").stat().st_size < 5_000_000
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(folder / "network.safetensors").values()} == {torch.float16}
    prior = diffcore.create("prior", "zoo:views")
    assert prior.sample_shape == (3, 32, 32) and prior.accepts == frozenset({"image", "camera"})
    batch = pairs(2, split_generator(0, "held-out"))
    pred = prior.predict(torch.zeros(2, 3, 32, 32), 0.5, Cond(image=batch.reference, camera=batch.relative))
    assert pred.x0.shape == (2, 3, 32, 32) and bool(torch.isfinite(pred.eps).all())
    record, metrics = (json.loads((folder / name).read_text()) for name in ("recipe.json", "metrics.json"))
    record.setdefault("parameters", sum(p.numel() for p in prior.network.parameters()))
    assert (folder / "README.md").read_text() == render_card(record, metrics)


def test_the_tour_section_draws_new_views_of_held_out_scenes(tmp_path):
    """The 3d-views section on the shipped prior: the picture, and its two PSNRs (the copy baseline recomputed here; a drawn view
    far above pure noise, which scores about 7 dB against these scenes)."""
    import json

    from diff_3d.views.metrics import psnr
    from diffcore.tour import run_tour

    run_tour(tmp_path / "tour", only=["3d-views"], quick=True)
    (section,) = json.loads((tmp_path / "tour" / "report.json").read_text())["sections"]
    assert section["status"] == "ok", section["error"]
    values = {name: value["value"] for name, value in section["metrics"].items()}
    data = pairs(4, split_generator(1, "held-out"))
    assert values["PSNR of the reference view copied (baseline)"] == round(float(psnr(data.reference, data.target).mean()), 2)
    assert 10.0 < values["PSNR of the drawn view to the truth"] < 40.0
    assert (tmp_path / "tour" / "3d-views" / "novel-views.png").is_file()
