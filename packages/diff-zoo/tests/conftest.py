"""Shared fixtures of diff-zoo's tests: one thread, and tiny versions of the recipes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diff_zoo.recipes import RECIPES, Budget, UNetConfig

torch.set_num_threads(1)

# small data for each builder, so that a recipe trains in about a second
TINY_DATA = {
    "digits": {},
    "patches": {"n_train": 64, "n_test": 16},
    "textures": {"n_train_per_class": 16, "n_test_per_class": 4},
    "phantoms": {"n_train": 32, "n_test": 8, "size": 32},
}


def make_tiny_recipe(name: str):
    """The recipe ``name`` with a two-level UNet of 8 and 16 channels and a few training images."""
    r = RECIPES[name]
    size = 32 if name == "phantoms" else r.unet.sample_size
    unet = UNetConfig(
        sample_size=size, channels=r.unet.channels, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, attention_head_dim=4
    )
    return dataclasses.replace(r, unet=unet, data_options=TINY_DATA[name], warmup=2, gpu=Budget(3, 4), cpu=Budget(3, 4))


@pytest.fixture(scope="session")
def tiny_recipe():
    """``tiny_recipe(name)``: the recipe with a two-level UNet of 8 and 16 channels and a few training images."""
    return make_tiny_recipe


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory):
    """A tiny class-conditional digits model trained for 3 steps, and its record."""
    from diff_zoo.train import train

    out = tmp_path_factory.mktemp("zoo") / "digits"
    record = train(make_tiny_recipe("digits"), out, seed=0, progress=False)
    return out, record
