"""Guarded plugin loading: a broken plugin is reported by name and skipped, the others work.

One set of fake distributions is discovered through :mod:`importlib.metadata` in fresh
interpreters (the way pip-installed plugins are found); checks that need a chosen load order
build a :class:`diffcore.plugin_host.PluginHost` from in-memory entry points instead.
"""

from __future__ import annotations

import types

import pytest

from diffcore import hookimpl, hookspec
from diffcore.errors import DiffcoreError, UnknownComponentError
from diffcore.plugin_host import PluginHost

GOOD = """
    import torch
    from diffcore import hookimpl, hookspecs  # importing the kernel's specs must not hurt

    class Identity:
        '''The identity measurement'''
        sigma_y = 0.0

        def A(self, x):
            return x

    def good_prior(dim=2):
        '''A standard Gaussian from the good plugin'''
        from diffcore.priors import GaussianPrior

        return GaussianPrior([0.0] * dim)

    @hookimpl
    def register_priors(register):
        register("good-prior", good_prior, aliases=("good",))

    @hookimpl
    def register_operators(register):
        register("good-op", Identity)

    def pinv_solver():
        def solve(prior, operator, y, *, steps, generator=None):
            return operator.A_pinv(y)
        return solve

    class Picture:
        def __init__(self, size=4):
            self.logits = torch.zeros(1, 3, size, size, requires_grad=True)

        def render(self, camera=None):
            return self.logits.tanh()

        def parameters(self):
            return [self.logits]

    class ZeroGrad:
        def grad(self, prior, image, cond, step):
            return image.detach() * 0

    @hookimpl
    def register_solvers(register):
        register("good-solver", pinv_solver, summary="The pseudo-inverse")

    @hookimpl
    def register_representations(register):
        register("good-picture", Picture)

    @hookimpl
    def register_distillers(register):
        register("good-distiller", ZeroGrad)
    """

HALF = """
    from diffcore import hookimpl

    @hookimpl
    def register_priors(register):
        register("half-a", dict)
        raise ValueError("gave up half-way")
    """

TYPO = """
    from diffcore import hookimpl

    @hookimpl
    def register_prior(register):  # not a diffcore hook
        register("typo-prior", dict)

    @hookimpl
    def register_operators(register):
        register("typo-op", dict)
    """


def _registers_prior(name: str) -> str:
    return f"""
        from diffcore import hookimpl

        @hookimpl
        def register_priors(register):
            register("{name}", dict)
        """


WIDGETS = """
    from diffcore import hookimpl, hookspec

    class hookspecs:
        '''The hook this plugin adds to diffcore.'''

        @hookspec
        def register_widgets(register):
            '''Register widget factories: ``register(name, factory)``.'''

    @hookimpl
    def register_widgets(register):
        register("own-widget", dict)
    """

WIDGET_USER = """
    from diffcore import hookimpl
    from widgets_plugin import hookspecs  # brings the spec along; the same namespace is added once

    @hookimpl
    def register_widgets(register):
        register("borrowed-widget", dict)
    """

# (distribution, entry-point name, module, source)
DISTRIBUTIONS = [
    ("fake-good", "good", "good_plugin", GOOD),
    ("fake-broken", "broken", "broken_plugin", "raise RuntimeError('boom at import')\n"),
    ("fake-exits", "exits", "exits_plugin", "raise SystemExit(3)\n"),
    ("fake-missing-dep", "missing-dep", "missing_dep_plugin", "import diffcore_test_no_such_dependency\n"),
    ("fake-half", "half", "half_plugin", HALF),
    ("fake-typo", "typo", "typo_plugin", TYPO),
    ("fake-clash-a", "clash-a", "clash_a_plugin", _registers_prior("same-name")),
    ("fake-clash-b", "clash-b", "clash_b_plugin", _registers_prior("same-name")),
    ("fake-clash-builtin", "clash-builtin", "clash_builtin_plugin", _registers_prior("gmm")),
    ("fake-widgets", "widgets", "widgets_plugin", WIDGETS),
    ("fake-widget-user", "widget-user", "widget_user_plugin", WIDGET_USER),
]

PROBE = """
    import json, os, sys
    import diffcore
    from diffcore.plugin_host import host, reset

    def snapshot():
        return {p.name: p.as_dict() for p in diffcore.plugins()}

    report = {}
    os.environ["DIFFCORE_PLUGINS"] = "good"
    report["only_good"] = sorted(snapshot())
    report["broken_imported"] = "broken_plugin" in sys.modules
    report["good_prior"] = diffcore.create("prior", "good", dim=3).sample_shape

    reset()
    os.environ["DIFFCORE_PLUGINS"] = ""
    report["only_builtin"] = sorted(snapshot())

    reset()
    os.environ["DIFFCORE_PLUGINS"] = " good , widget-user "
    report["user_alone"] = snapshot()["widget-user"]
    alone = []
    host().pm.hook.register_widgets(register=lambda name, factory: alone.append(name))
    report["widgets_alone"] = alone

    reset()
    del os.environ["DIFFCORE_PLUGINS"]
    report["plugins"] = snapshot()
    report["priors"] = {c.name: c.plugin for c in diffcore.available("prior")}
    kinds = ("operator", "solver", "representation", "distiller")
    report["available"] = {kind: {c.name: c.plugin for c in diffcore.available(kind)} for kind in kinds}
    report["built"] = [
        callable(diffcore.create("solver", "good-solver")),
        isinstance(diffcore.create("representation", "good-picture", size=2), diffcore.protocols.Representation),
        isinstance(diffcore.create("distiller", "good-distiller"), diffcore.protocols.Distiller),
    ]
    try:
        diffcore.create("prior", "good-prio")
    except diffcore.DiffcoreError as exc:
        report["unknown"] = str(exc)
    widgets = []
    host().pm.hook.register_widgets(register=lambda name, factory: widgets.append(name))
    report["widgets"] = sorted(widgets)
    print(json.dumps(report))
    """


@pytest.fixture(scope="module")
def site(tmp_path_factory, make_distribution):
    site = tmp_path_factory.mktemp("site")
    for dist, ep, module, source in DISTRIBUTIONS:
        make_distribution(site, dist, entry_points={ep: module}, files={f"{module}.py": source})
    return site


@pytest.fixture(scope="module")
def report(site, run_python):
    return run_python(PROBE, path=[site])


def test_plugin_that_raises_at_import_is_reported_by_name_and_skipped(report):
    plugins = report["plugins"]
    for name, error in [
        ("broken", "RuntimeError: boom at import"),
        ("exits", "SystemExit: 3"),
        ("missing-dep", "diffcore_test_no_such_dependency"),
    ]:
        assert plugins[name]["error"].startswith("failed to import"), plugins[name]
        assert error in plugins[name]["error"]
        assert plugins[name]["registered"] == {}
        assert plugins[name]["version"] == "1.0.0"  # still listed with its distribution's version
    # ... and the good plugin and the built-ins still work
    assert plugins["good"]["error"] is None
    assert plugins["good"]["registered"] == {
        "prior": ["good-prior"],
        "operator": ["good-op"],
        "solver": ["good-solver"],
        "representation": ["good-picture"],
        "distiller": ["good-distiller"],
    }
    assert report["priors"]["good-prior"] == "good" and report["priors"]["gmm"] == "diffcore"
    for kind, name in [
        ("operator", "good-op"),
        ("solver", "good-solver"),
        ("representation", "good-picture"),
        ("distiller", "good-distiller"),
    ]:
        assert report["available"][kind][name] == "good"
    assert report["built"] == [True, True, True]


def test_hook_that_raises_half_way_registers_nothing_from_that_hook(report):
    half = report["plugins"]["half"]
    assert half["error"].startswith("failed in register_priors: ValueError: gave up half-way")
    assert "half-a" not in report["priors"]
    assert half["registered"] == {}


def test_plugin_with_an_unknown_hook_is_reported_and_unregistered(report):
    typo = report["plugins"]["typo"]
    assert typo["error"] == "declares an unknown hook 'register_prior' (did you mean 'register_priors'?)"
    assert "typo-prior" not in report["priors"] and "typo-op" not in report["available"]["operator"]


def test_duplicate_prior_name_is_rejected_naming_both_plugins(report):
    owner = report["priors"]["same-name"]
    assert owner in ("clash-a", "clash-b")
    loser = "clash-b" if owner == "clash-a" else "clash-a"
    error = report["plugins"][loser]["error"]
    assert "'same-name' is already registered by plugin" in error
    assert f"'{owner}'" in error and f"'{loser}'" in error
    assert report["plugins"][owner]["error"] is None


def test_third_party_plugin_cannot_take_a_built_in_name(report):
    assert report["priors"]["gmm"] == "diffcore"
    assert report["priors"]["gaussian"] == "diffcore"  # the built-in hook kept all its names
    error = report["plugins"]["clash-builtin"]["error"]
    assert "'gmm' is already registered by plugin 'diffcore'" in error and "'clash-builtin'" in error


def test_diffcore_plugins_env_restricts_loading(report):
    assert report["only_good"] == ["diffcore", "good"]
    assert report["broken_imported"] is False  # not even imported
    assert report["good_prior"] == [3]
    assert report["only_builtin"] == ["diffcore"]


def test_plugin_hookspecs_let_other_plugins_implement_its_hook(report):
    assert report["plugins"]["widgets"]["error"] is None
    assert report["plugins"]["widget-user"]["error"] is None
    assert report["widgets"] == ["borrowed-widget", "own-widget"]
    # a plugin that imports the declaring plugin's ``hookspecs`` works without that plugin loaded
    assert report["user_alone"]["error"] is None
    assert report["widgets_alone"] == ["borrowed-widget"]


def test_unknown_name_lists_the_known_ones_and_the_closest(report):
    message = report["unknown"]
    assert message.startswith("unknown prior 'good-prio'; known priors: ")
    assert "gmm" in message and "good-prior" in message
    assert message.endswith("Did you mean 'good-prior'?")


def test_diffcore_plugins_cli_reports_broken_plugins(site, run_command, console_script, parse_plugins_json):
    proc = run_command([str(console_script("diffcore")), "plugins", "--json"], path=[site])
    plugins = parse_plugins_json(proc.stdout)
    assert "boom at import" in plugins["broken"]["error"]
    assert plugins["good"]["error"] is None and plugins["good"]["registered"]["prior"] == ["good-prior"]


# -- in-process, with a chosen load order ------------------------------------------------------


class WidgetSpecs:
    @hookspec
    def register_widgets(register):
        """Register widget factories."""


def _plugin(**hooks):
    return types.SimpleNamespace(**hooks)


@hookimpl
def _impl_widgets(register):
    register("w")


def test_a_hook_may_be_declared_by_a_plugin_loaded_after_its_implementer(entry_point):
    owner = _plugin(hookspecs=WidgetSpecs)
    user = types.SimpleNamespace(register_widgets=_impl_widgets)
    for order in ([entry_point("user", user), entry_point("owner", owner)], [entry_point("owner", owner), entry_point("user", user)]):
        host = PluginHost(entry_points=order)
        assert host.infos["user"].error is None and host.infos["owner"].error is None
        got = []
        host.pm.hook.register_widgets(register=got.append)
        assert got == ["w"]


def _priors(*names):
    @hookimpl
    def register_priors(register):
        for name in names:
            register(name, dict)

    return _plugin(register_priors=register_priors)


def test_the_later_plugin_loses_a_name_clash_and_keeps_none_of_that_hook(entry_point):
    host = PluginHost(entry_points=[entry_point("first", _priors("shared")), entry_point("second", _priors("mine", "shared"))])
    assert host.registry.get("prior", "shared").plugin == "first"
    assert "mine" not in host.registry.names("prior")
    error = host.infos["second"].error
    assert "prior name 'shared' is already registered by plugin 'first'; plugin 'second' cannot register it again" in error


def test_a_plugin_clashing_with_itself_or_using_a_bad_name_is_reported(entry_point):
    host = PluginHost(
        entry_points=[entry_point("twice", _priors("a", "a")), entry_point("shouty", _priors("Loud")), entry_point("fine", _priors("fine"))]
    )
    assert "'a' is already registered by plugin 'twice'" in host.infos["twice"].error
    assert "invalid prior name 'Loud' from plugin 'shouty'" in host.infos["shouty"].error
    assert {"a", "Loud"}.isdisjoint(host.registry.names("prior")) and "fine" in host.registry.names("prior")


def test_entry_point_name_taken_twice_is_reported(entry_point):
    host = PluginHost(entry_points=[entry_point("twin", _priors("twin-a")), entry_point("twin", _priors("twin-b"))])
    assert host.infos["twin"].error is None
    (second,) = [info for name, info in host.infos.items() if name.startswith("twin (")]
    assert "plugin name 'twin' is already taken" in second.error
    assert "twin-b" not in host.registry.names("prior")


def test_unknown_component_error_is_a_key_error_with_the_closest_match(entry_point):
    host = PluginHost(entry_points=[entry_point("p", _priors("zoo:digits"))])
    with pytest.raises(UnknownComponentError, match=r"Did you mean 'zoo:digits'\?") as info:
        host.registry.get("prior", "zoo:digit")
    assert isinstance(info.value, KeyError) and isinstance(info.value, DiffcoreError)
    with pytest.raises(DiffcoreError, match=r"unknown component kind 'prier'.*did you mean 'prior'"):
        host.registry.get("prier", "gmm")
