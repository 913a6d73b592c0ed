"""The zoo trains on diffcore's loop (diffcore.training.fit) and repeats its old loop's losses step for step.

``fixtures/old_loop_losses.json`` holds the per-step losses of the zoo's own loop, recorded before
it moved into the kernel (the commit is in the file). Every random draw keeps its order (batch
indices, flips, label dropout, then the step and the noise), so on the CPU the new loop gives the
same float32 losses, bit for bit, on a machine like the one that recorded them (same torch, same
CPU kernels). Elsewhere convolutions round differently in the last bit (AVX2 against AVX512
kernels moved the digits losses by at most 2.1e-7 relative over 40 steps, measured with
ATEN_CPU_CAPABILITY=avx2), so there the comparison allows 1e-5 relative.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from diff_zoo.recipes import RECIPES
from diff_zoo.train import _window_means, device_name, train

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "old_loop_losses.json").read_text())


def _recipe(name: str, tiny_recipe):
    if name == "digits":
        return RECIPES["digits"]
    if name == "tiny-textures":
        return tiny_recipe("textures")
    phantoms = tiny_recipe("phantoms")
    return dataclasses.replace(phantoms, schedule=dataclasses.replace(phantoms.schedule, prediction_type="v_prediction"), cpu_autocast=True)


def _same_machine() -> bool:
    cpu = device_name(torch.device("cpu")).rsplit(" (", 1)[0]
    return (FIXTURE["torch_version"], FIXTURE["cpu_capability"], FIXTURE["cpu"]) == (
        torch.__version__,
        torch.backends.cpu.get_cpu_capability(),
        cpu,
    )


@pytest.mark.parametrize("run", FIXTURE["runs"], ids=[r["name"] for r in FIXTURE["runs"]])
def test_the_kernel_loop_repeats_the_old_loss_curve(tmp_path, run, tiny_recipe):
    recipe = _recipe(run["name"], tiny_recipe)
    assert json.loads(json.dumps(recipe.as_dict())) == run["recipe"]  # the setting the fixture was recorded with
    losses = []
    record = train(
        recipe,
        tmp_path / "out",
        seed=run["seed"],
        iterations=run["iterations"],
        batch_size=run["batch_size"],
        progress=False,
        on_step=lambda step, loss, logs: losses.append(loss),
    )
    assert len(losses) == run["iterations"] == record["iterations"] and record["amp"] == run["amp"]
    if _same_machine():
        assert losses == run["losses"]
        assert [list(p) for p in record["loss_curve"]] == run["loss_curve"] and record["final_loss"] == run["final_loss"]
    else:
        assert losses == pytest.approx(run["losses"], rel=1e-5, abs=0)


def test_the_logged_curve_is_the_old_loops_window_mean():
    """The zoo's loss_curve is rebuilt from the per-step losses as the old loop summed them (float32, in order)."""
    for run in FIXTURE["runs"]:
        assert [list(p) for p in _window_means(run["losses"], 25)] == run["loss_curve"]
