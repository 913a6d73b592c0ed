"""Classifier-free guidance on an exact class-conditional mixture."""

import pytest
import torch

import diffcore
from diffcore import Cond
from diffcore.errors import DiffcoreError
from diffcore.priors import GaussianMixturePrior, Guided
from diffcore.protocols import Prediction, PriorBase, check_cond

MEANS = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])


class LabelledMixture(PriorBase):
    """Label k selects component k; label -1 (null) gives the whole mixture."""

    accepts = frozenset({"labels"})
    null_cond = Cond(labels=torch.tensor([-1]))

    def __init__(self):
        self.full = GaussianMixturePrior(MEANS)
        self.parts = [GaussianMixturePrior(MEANS[k : k + 1]) for k in range(3)]
        self.schedule = self.full.schedule
        self.sample_shape = (2,)

    def predict(self, x_t, t, cond=None):
        check_cond("labelled", self.accepts, cond)
        labels = cond.labels if cond is not None and cond.labels is not None else torch.full((x_t.shape[0],), -1)
        x0, eps = torch.empty_like(x_t), torch.empty_like(x_t)
        for i, k in enumerate(labels.tolist()):
            p = self.full if k < 0 else self.parts[k]
            ti = t[i] if isinstance(t, torch.Tensor) and t.ndim == 1 else t
            pred = p.predict(x_t[i : i + 1], ti)
            x0[i], eps[i] = pred.x0[0], pred.eps[0]
        return Prediction(x0, eps)


def test_scale_one_is_conditional_and_zero_unconditional():
    base = LabelledMixture()
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    cond, uncond = Cond(labels=torch.tensor([1])), Cond(labels=torch.tensor([-1]))
    c = base.predict(x, 0.6, Cond(labels=torch.tensor([1, 1, 1, 1])))
    u = base.predict(x, 0.6)
    torch.testing.assert_close(Guided(base, 1.0, cond, uncond).predict(x, 0.6).eps, c.eps)
    torch.testing.assert_close(Guided(base, 0.0, cond, uncond).predict(x, 0.6).eps, u.eps)
    g = Guided(base, 3.0, cond, uncond).predict(x, 0.6)
    torch.testing.assert_close(g.eps, u.eps + 3.0 * (c.eps - u.eps))
    torch.testing.assert_close(g.x0, u.x0 + 3.0 * (c.x0 - u.x0))


def test_guided_sampling_concentrates_on_the_class():
    base = LabelledMixture()
    guided = Guided(base, 2.0, Cond(labels=torch.tensor([2])), Cond(labels=torch.tensor([-1])))
    x = diffcore.sample(guided, 64, steps=20, generator=torch.Generator().manual_seed(0))
    assert float((x[:, 1] > 1.5).float().mean()) > 0.95


def test_per_sample_times_and_override():
    base = LabelledMixture()
    guided = Guided(base, 1.0, Cond(labels=torch.tensor([0])), Cond(labels=torch.tensor([-1])))
    x = torch.randn(2, 2)
    t = torch.tensor([0.2, 0.7])
    pred = guided.predict(x, t, Cond(labels=torch.tensor([1, 2])))
    want = base.predict(x, t, Cond(labels=torch.tensor([1, 2])))
    torch.testing.assert_close(pred.x0, want.x0)


def test_mismatched_fields_are_refused():
    base = LabelledMixture()
    with pytest.raises(DiffcoreError, match="same fields"):
        Guided(base, 2.0, Cond(labels=torch.tensor([0])), Cond()).predict(torch.zeros(1, 2), 0.5)
    with pytest.raises(DiffcoreError, match="diffcore.Cond"):
        Guided(base, 2.0, {"labels": 1}, Cond())


def test_conditioned_fixes_the_labels():
    from diffcore.priors import Conditioned

    base = LabelledMixture()
    fixed = Conditioned(base, Cond(labels=torch.tensor([2])))
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(1))
    want = base.predict(x, 0.4, Cond(labels=torch.tensor([2, 2, 2])))
    torch.testing.assert_close(fixed.predict(x, 0.4).x0, want.x0)
    assert fixed.accepts == frozenset() and fixed.sample_shape == (2,)
    with pytest.raises(DiffcoreError, match="fixed"):
        fixed.predict(x, 0.4, Cond(labels=torch.tensor([1, 1, 1])))
    with pytest.raises(DiffcoreError, match="does not accept text"):
        Conditioned(base, Cond(text="a cat"))
