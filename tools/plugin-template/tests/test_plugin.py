"""{{name}}: found through its entry point, and its components keep diffcore's contracts.

The components are built the way users build them, through diffcore. The prior is checked
against diffcore's exact Gaussian prior (the oracle), the operator against the identities
every linear operator satisfies, the sampler against diffcore's own DDIM.
"""

import pytest
import torch

import diffcore

torch.set_num_threads(1)


def gaussian(**options):
    return diffcore.create("prior", "{{name}}-gaussian", **options)


def mask(keep, **options):
    return diffcore.create("operator", "{{name}}-mask", keep=keep, **options)


def test_found_through_its_entry_point():
    info = {p.name: p for p in diffcore.plugins()}["{{name}}"]
    assert info.error is None
    expected = {"prior": ["{{name}}-gaussian"], "operator": ["{{name}}-mask"], "sampler": ["{{name}}-ddim"]}
    assert info.registered == expected
    assert type(gaussian(mean=[0.0, 0.0])).__module__ == "{{import_name}}.prior"
    assert type(mask([True, False])).__module__ == "{{import_name}}.mask"
    assert type(diffcore.create("sampler", "{{name}}-ddim")).__module__ == "{{import_name}}.sampler"


def test_prior_satisfies_the_protocol():
    prior = gaussian(mean=torch.zeros(1, 4, 4))
    assert isinstance(prior, diffcore.protocols.Prior)
    assert prior.sample_shape == (1, 4, 4)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "vp", "ve", "edm"])
def test_prior_keeps_diffcores_prior_contract(schedule):
    testing = pytest.importorskip("diffcore.testing")
    testing.check_prior(gaussian(mean=torch.linspace(-1, 1, 16).reshape(1, 4, 4), std=0.5, schedule=schedule), n=3)


@pytest.mark.parametrize("schedule", ["linear", "vp", "edm"])
def test_prior_matches_the_exact_oracle(schedule):
    mean, std = [1.0, -2.0, 0.5], 0.7
    prior = gaussian(mean=mean, std=std, schedule=schedule)
    oracle = diffcore.priors.GaussianPrior(mean, cov=[std**2] * 3, schedule=prior.schedule)
    g = torch.Generator().manual_seed(0)
    x_t = 3 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    for t in (0.05, 0.3, 0.7, 1.0):
        got, want = prior.predict(x_t, t), oracle.predict(x_t, t)
        torch.testing.assert_close(got.eps, want.eps, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got.x0, want.x0, rtol=1e-6, atol=1e-6)


def test_prior_rejects_bad_input():
    prior = gaussian(mean=[0.0, 0.0])
    with pytest.raises(diffcore.DiffcoreError, match=r"expected \(N, 2\)"):
        prior.predict(torch.zeros(4, 3), 0.5)
    with pytest.raises(diffcore.DiffcoreError, match="does not accept labels"):
        prior.predict(torch.zeros(4, 2), 0.5, diffcore.Cond(labels=torch.zeros(4, dtype=torch.long)))
    with pytest.raises(diffcore.DiffcoreError, match="std must be > 0"):
        gaussian(mean=[0.0], std=0.0)


def test_mask_is_a_linear_operator_with_its_adjoint_and_pseudo_inverse():
    g = torch.Generator().manual_seed(0)
    keep = torch.rand(2, 3, 3, generator=g) > 0.4
    op = mask(keep, sigma_y=0.05)
    assert isinstance(op, diffcore.protocols.Operator) and isinstance(op, diffcore.protocols.LinearOperator)
    x = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    y = torch.randn(4, int(keep.sum()), generator=g, dtype=torch.float64)
    # <A x, y> = <x, A^T y>
    torch.testing.assert_close((op.A(x) * y).sum(), (x * op.A_adjoint(y)).sum())
    # A A^+ y = y, and A^+ A is a projection
    torch.testing.assert_close(op.A(op.A_pinv(y)), y)
    p = op.A_pinv(op.A(x))
    torch.testing.assert_close(op.A_pinv(op.A(p)), p)


def test_mask_rejects_bad_input():
    op = mask([True, False])
    with pytest.raises(diffcore.DiffcoreError, match=r"expected \(N, 2\)"):
        op.A(torch.zeros(4, 3))
    with pytest.raises(diffcore.DiffcoreError, match="booleans"):
        mask([1, 0])


def draw(sampler, n=256, steps=10, **options):
    prior = diffcore.priors.GaussianMixturePrior(means=[[-3.0, 0.0], [3.0, 0.0]])
    return diffcore.sample(prior, n, steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(0), **options)


def test_sampler_takes_diffcores_ddim_steps():
    """Without clip the sampler is DDIM with eta = 0: the same samples as diffcore's ddim, step for step."""
    for steps in (1, 10, 50):
        torch.testing.assert_close(draw("{{name}}-ddim", steps=steps), draw("ddim", steps=steps), rtol=0, atol=0)
    assert not torch.allclose(draw("{{name}}-ddim"), draw("ddim", eta=1.0))


def test_sampler_clips_the_clean_estimate():
    x = draw("{{name}}-ddim:clip=1.0")  # options inline, as on the command line
    assert float(x.abs().max()) <= 1.0  # the last step lands on the clipped estimate
    torch.testing.assert_close(x, draw("{{name}}-ddim", clip=1.0), rtol=0, atol=0)
    assert float(draw("{{name}}-ddim").abs().max()) > 2.0


def test_sampler_rejects_bad_options():
    with pytest.raises(diffcore.DiffcoreError, match="it takes: clip"):
        draw("{{name}}-ddim", eta=0.5)
    with pytest.raises(diffcore.DiffcoreError, match="clip must be > 0"):
        diffcore.create("sampler", "{{name}}-ddim", clip=-1.0)
