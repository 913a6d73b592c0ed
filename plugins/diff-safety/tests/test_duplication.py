"""The duplication experiment: the training set it builds, and (a tiny run) the direction of the effect."""

from __future__ import annotations

import pytest
import torch

from diff_safety.duplication import TINY, DuplicationRecipe, duplicated_training_set, rates, run_duplication
from diffcore.errors import DiffcoreError

pytest.importorskip("diff_zoo")


def test_training_set_repeats_exactly_the_chosen_images():
    recipe = DuplicationRecipe(duplicated=((10, 3), (100, 2)))
    order, levels = duplicated_training_set(50, recipe)
    counts = torch.bincount(order, minlength=50)
    assert sorted(levels) == [1, 10, 100]
    assert counts[levels[100]].tolist() == [100, 100] and counts[levels[10]].tolist() == [10, 10, 10]
    assert counts[levels[1]].eq(1).all() and len(levels[1]) == 45
    assert order.numel() == 45 + 30 + 200
    again, _ = duplicated_training_set(50, recipe)
    assert torch.equal(order, again)  # the choice depends only on the recipe's seed
    with pytest.raises(DiffcoreError, match="only 4"):
        duplicated_training_set(4, recipe)


@pytest.mark.slow
def test_duplicated_images_are_extracted_more_often():
    """A tiny model on 40 digits (2 of them 40 times), Carlini et al.'s test with its real threshold (1/3)."""
    result = run_duplication(TINY)
    by = rates(result)
    assert result["recipe"]["criterion"]["delta"] == pytest.approx(1 / 3)
    assert by[40] >= 0.5 and by[1] <= 0.05 and by[40] > by[1]
    assert result["extracted_generations"] >= 2
