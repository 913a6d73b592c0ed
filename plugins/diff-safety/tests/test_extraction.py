"""The extraction test flags copies (and only copies), deduplicates the training set, and runs the cosine test."""

from __future__ import annotations

import pytest
import torch

from diff_safety.clique import clique_test, largest_clique
from diff_safety.distances import relative_score
from diff_safety.duplicates import duplicate_groups, duplicate_summary
from diff_safety.extraction import Criterion, TrainingSet, find_extractions
from diff_safety.features import feature_space
from diff_safety.neighbours import NeighbourIndex
from diffcore.errors import DiffcoreError


def _images(n, seed=0, shape=(1, 8, 8)):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_copies_are_extracted_and_new_images_are_not():
    train = _images(80)
    noise = 0.02 * torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    copies = train[[3, 10, 40, 79]] + noise
    fresh = _images(6, seed=1)  # new random images: as far from the training set as its images are from each other
    found = find_extractions(torch.cat([copies, fresh]), train, Criterion(grid=2, n=30))
    assert found.extracted.tolist() == [True] * 4 + [False] * 6
    assert found.nearest[:4].tolist() == [3, 10, 40, 79]
    assert torch.all(found.score[:4] < 0.1) and torch.all(found.score[4:] > 1.0)
    assert found.extracted_training_images().tolist() == [3, 10, 40, 79]


def test_duplicates_are_collapsed_so_a_copy_of_a_duplicated_image_is_caught():
    train = _images(40)
    dup = torch.cat([train, train[7:8].repeat(59, 1, 1, 1)])  # image 7 appears 60 times
    unique = TrainingSet.of(dup)
    assert len(unique) == 40 and int(unique.counts[7]) == 60 and int(unique.first[7]) == 7
    assert torch.equal(unique.inverse[40:], torch.full((59,), 7))
    gen = train[7:8] + 0.001
    # Without deduplication its 50 nearest are mostly the same image: eq. 1 gives about 1 / alpha
    raw = NeighbourIndex(dup, grid=2).search(gen, k=50).distances
    assert float(relative_score(raw)[0]) > 1.5
    found = find_extractions(gen, dup, Criterion(grid=2, n=30))
    assert found.extracted.tolist() == [True] and int(found.nearest[0]) == 7


def test_cosine_replicas_survive_a_change_of_tone():
    train = _images(50)
    toned = 0.6 * train[:3] + 0.3  # same content, lower contrast, brighter: far in L2
    found = find_extractions(toned, train, Criterion(grid=2, n=20, cosine_threshold=0.99))
    assert found.replica.tolist() == [True] * 3 and found.similar.tolist() == [0, 1, 2]
    assert not found.extracted.any()  # the tiled-L2 test does not see through the tone change
    custom = find_extractions(toned, train, Criterion(grid=2, n=20), features=lambda x: x.reshape(len(x), -1))
    assert custom.feature_space == "<lambda>"


def test_feature_spaces_by_name_and_bad_names():
    x = _images(4)
    assert feature_space("pixels")(x).shape == (4, 64)
    with pytest.raises(DiffcoreError, match="Did you mean 'pixels'"):
        feature_space("pixel")


def test_training_set_must_match_and_not_be_empty():
    with pytest.raises(DiffcoreError, match="must match"):
        find_extractions(_images(2, shape=(1, 4, 4)), _images(5))
    with pytest.raises(DiffcoreError, match="empty"):
        find_extractions(_images(2), torch.zeros(0, 1, 8, 8))


def _brute_clique(adj):
    import itertools

    m = adj.shape[0]
    for size in range(m, 0, -1):
        for subset in itertools.combinations(range(m), size):
            if all(adj[i, j] for i, j in itertools.combinations(subset, 2)):
                return size
    return 0


@pytest.mark.parametrize("seed", range(6))
def test_largest_clique_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    m = 10
    upper = torch.rand(m, m, generator=g) < 0.5
    adj = torch.triu(upper, 1)
    adj = adj | adj.T
    clique = largest_clique(adj)
    assert all(adj[i, j] for i in clique for j in clique if i != j)
    assert len(clique) == _brute_clique(adj)


def test_clique_test_flags_the_condition_that_repeats_one_image():
    base = _images(1)
    g = torch.Generator().manual_seed(3)
    repeated = base + 0.01 * torch.randn(12, 1, 8, 8, generator=g)
    varied = _images(12, seed=4)
    results = clique_test(torch.cat([repeated, varied]), ["a"] * 12 + ["b"] * 12, threshold=0.1, k=10, grid=2)
    by = {r.condition: r for r in results}
    assert by["a"].memorised and len(by["a"].clique) == 12 and by["a"].generations == 12
    assert not by["b"].memorised and len(by["b"].clique) == 1


def test_duplicate_groups_finds_the_planted_groups():
    x = _images(30)
    x[5] = x[2]
    x[9] = x[2] + 0.01
    x[20:24] = x[11]
    groups = duplicate_groups(x, threshold=0.05, grid=2, k=4)
    assert [g.indices for g in groups] == [(11, 20, 21, 22, 23), (2, 5, 9)]
    assert groups[1].max_distance == pytest.approx(0.01, abs=1e-4)
    assert duplicate_summary(groups, 30) == {
        "images": 30,
        "groups": 2,
        "images_in_groups": 8,
        "largest_group": 5,
        "group_sizes": {"3": 1, "5": 1},
    }
