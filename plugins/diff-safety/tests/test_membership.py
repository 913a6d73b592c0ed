"""Membership inference: the ROC AUC against its definition, and the loss attack on exact priors."""

from __future__ import annotations

import itertools

import pytest
import torch

from diff_safety.membership import denoising_losses, membership_inference, roc_auc, tpr_at_fpr
from diffcore.errors import DiffcoreError
from diffcore.priors import GaussianMixturePrior, GaussianPrior


def test_roc_auc_is_the_share_of_correctly_ordered_pairs():
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 6, (17,), generator=g).float()  # many ties
    neg = torch.randint(0, 6, (11,), generator=g).float()
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos.tolist(), neg.tolist())]
    assert roc_auc(pos, neg) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    with pytest.raises(DiffcoreError):
        roc_auc(torch.tensor([]), torch.tensor([1.0]))


def test_tpr_at_fpr():
    neg = torch.arange(100.0)  # 1 % of negatives lie above 98
    assert tpr_at_fpr(torch.tensor([98.5, 99.5, 50.0, 200.0]), neg, 0.01) == 0.75
    assert tpr_at_fpr(torch.tensor([98.5, 99.5]), neg, 0.0) == 0.5  # no negative may pass: above 99 only


def test_a_memorising_prior_gives_away_its_members():
    """A mixture with a narrow component on each training point is a model that memorised them."""
    g = torch.Generator().manual_seed(1)
    members, others = torch.randn(24, 6, generator=g), torch.randn(24, 6, generator=g)
    prior = GaussianMixturePrior(members, covs=torch.full((24, 6), 0.01**2))
    result = membership_inference(prior, members, others, times=(0.05, 0.1), draws=2)
    assert result.auc == 1.0 and result.tpr_at_1pct_fpr == 1.0
    assert float(result.member_losses.max()) < float(result.non_member_losses.min())


def test_a_prior_that_saw_no_data_gives_chance():
    g = torch.Generator().manual_seed(2)
    prior = GaussianPrior(torch.zeros(6))  # N(0, I): exactly the distribution both sets come from
    a, b = torch.randn(300, 6, generator=g), torch.randn(300, 6, generator=g)
    assert abs(membership_inference(prior, a, b, times=(0.3,), draws=2).auc - 0.5) < 0.07


def test_same_seed_same_noise_and_bad_times():
    prior = GaussianPrior(torch.zeros(3))
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    one = denoising_losses(prior, x, times=(0.2,), generator=torch.Generator().manual_seed(7), batch=2)
    two = denoising_losses(prior, x, times=(0.2,), generator=torch.Generator().manual_seed(7), batch=2)
    assert torch.equal(one, two)
    with pytest.raises(DiffcoreError, match="times must be in"):
        denoising_losses(prior, x, times=(0.0,), generator=torch.Generator())
