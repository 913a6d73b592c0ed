"""The registry and the public create / available / plugins API."""

import pytest
import torch

import diffcore
from diffcore.errors import DiffcoreError, UnknownComponentError
from diffcore.registry import Registry, normalize_kind, parse_spec


def test_builtin_components_are_available():
    names = {c.name for c in diffcore.available("prior")}
    assert {"gmm", "gaussian", "diffusers", "stable-diffusion"} <= names
    owner = {c.name: c.plugin for c in diffcore.available("priors")}
    assert owner["gmm"] == "diffcore"
    assert any(p.name == "diffcore" and p.error is None for p in diffcore.plugins())


def test_create_with_inline_and_keyword_options():
    p = diffcore.create("prior", "gmm:means=[[0.0, 1.0]],schedule='vp'")
    assert p.sample_shape == (2,)
    q = diffcore.create("prior", "gaussian-mixture", means=[[0.0, 1.0, 2.0]])
    assert q.sample_shape == (3,)
    # keyword options win over inline ones
    r = diffcore.create("prior", "gaussian:mean=[0.0]", mean=[1.0, 2.0])
    assert r.sample_shape == (2,)


def test_unknown_names_list_known_ones_and_the_closest():
    with pytest.raises(UnknownComponentError) as err:
        diffcore.create("prior", "gmn")
    msg = str(err.value)
    assert "unknown prior 'gmn'" in msg and "gaussian" in msg and "Did you mean 'gmm'?" in msg
    with pytest.raises(DiffcoreError, match="unknown component kind 'prios'.*did you mean 'prior'"):
        diffcore.available("prios")


def test_bad_options_name_the_accepted_ones():
    with pytest.raises(DiffcoreError, match="bad options for prior 'gmm'.*it accepts: means, weights, covs, schedule, shape"):
        diffcore.create("prior", "gmm", means=[[0.0]], colour="red")


def test_parse_spec_errors():
    with pytest.raises(DiffcoreError, match="expected key=value"):
        parse_spec("sr:factor=4,oops")
    assert parse_spec("blur:kernel=gauss,size=5") == ("blur", {"kernel": "gauss", "size": 5})
    assert normalize_kind("distillers") == "distiller"


def test_parse_spec_takes_specs_as_option_values():
    # the options start at the first colon followed by key=, so a value may be a spec with colons
    assert parse_spec("collage:base=zoo:patches,graph=grid") == ("collage", {"base": "zoo:patches", "graph": "grid"})
    assert parse_spec("zoo:digits:path='a:b',guidance=2") == ("zoo:digits", {"path": "a:b", "guidance": 2})
    nested = parse_spec("collage:base='zoo:textures:clip_x0=false,path=x',windows=4")
    assert nested == ("collage", {"base": "zoo:textures:clip_x0=false,path=x", "windows": 4})
    assert parse_spec(nested[1]["base"]) == ("zoo:textures", {"clip_x0": False, "path": "x"})
    assert parse_spec("zoo:digits") == ("zoo:digits", {})
    with pytest.raises(DiffcoreError, match="expected key=value"):
        parse_spec("collage:base=zoo:patches,oops")


def _factory():
    """First line becomes the summary"""


def test_staging_and_duplicates():
    reg = Registry()
    register, staged = reg.stage("prior", "alpha")
    register("a", _factory, aliases=("a2",))
    reg.commit("prior", staged)
    assert reg.get("prior", "a2").summary == "First line becomes the summary"
    register, staged = reg.stage("prior", "beta")
    register("b", _factory)
    register("a2", _factory)
    with pytest.raises(DiffcoreError, match="'a2' is already registered by plugin 'alpha'; plugin 'beta'"):
        reg.commit("prior", staged)
    assert "b" not in reg.components["prior"], "a rejected hook call must leave nothing behind"
    register, _ = reg.stage("prior", "beta")
    with pytest.raises(DiffcoreError, match="invalid prior name 'Bad Name'"):
        register("Bad Name", _factory)
    with pytest.raises(DiffcoreError, match="must be callable"):
        register("ok", 3)


def test_missing_optional_dependency_is_explained():
    from diffcore.registry import Component, build

    def needs_extra():
        raise ImportError('this needs nerfstudio: pip install "diff-3d[nerfstudio]"')

    comp = Component("representation", "nerf", needs_extra, "diff-3d")
    with pytest.raises(DiffcoreError, match=r"needs a missing package: .*pip install \"diff-3d\[nerfstudio\]\""):
        build(comp, {})


def test_create_gaussian_prior_predicts():
    p = diffcore.create("prior", "gaussian", mean=[2.0], cov=[[4.0]])
    pred = p.predict(torch.zeros(1, 1), 0.0)
    assert float(pred.x0) == pytest.approx(0.0, abs=1e-6)
