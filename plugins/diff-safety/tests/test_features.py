"""Feature spaces of the replica test: the shipped one, the zoo's classifier, and a transformers vision model from a folder."""

from __future__ import annotations

import pytest
import torch

from diff_safety.features import embed, feature_space, pixel_features, vision_features
from diffcore.errors import DiffcoreError, ShapeError


def test_pixel_features_are_correlations_of_small_images():
    x = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f = pixel_features(x)
    assert f.shape == (3, 3 * 16 * 16)  # pooled to 16x16
    assert torch.allclose(f.norm(dim=1), torch.ones(3)) and torch.allclose(f.mean(1), torch.zeros(3), atol=1e-6)
    small = torch.nn.functional.adaptive_avg_pool2d(x, 16).reshape(3, -1)
    r = torch.corrcoef(small)[0, 1]
    assert float(f[0] @ f[1]) == pytest.approx(float(r), abs=1e-5)


def test_zoo_digits_features():
    pytest.importorskip("diff_zoo")
    from diff_zoo import data

    images = data.digits().test.images()[:5]
    f = embed(feature_space("zoo-digits"), images)
    assert f.shape == (5, 45) and torch.isfinite(f).all()


def test_vision_features_from_a_local_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.Dinov2Config(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformers.Dinov2Model(config).save_pretrained(tmp_path / "tiny", safe_serialization=True)
    space = vision_features(str(tmp_path / "tiny"))
    grey = torch.rand(4, 1, 16, 16) * 2 - 1
    f = space(grey)
    assert f.shape == (4, 32) and torch.isfinite(f).all()
    assert torch.allclose(space(grey[:2]), f[:2], atol=1e-5)  # per image, batch independent
    with pytest.raises(ShapeError):
        space(torch.zeros(1, 2, 16, 16))
    with pytest.raises(DiffcoreError, match="cannot load the vision model") as info:
        vision_features(str(tmp_path / "missing"))
    assert "\n" not in str(info.value)


def test_a_feature_space_must_return_one_row_per_image():
    with pytest.raises(ShapeError, match="expected \\(4, D\\)"):
        embed(lambda x: x[:2].flatten(1), torch.zeros(4, 1, 4, 4))
    with pytest.raises(DiffcoreError, match="options go with a feature space name"):
        feature_space(lambda x: x, size=8)
