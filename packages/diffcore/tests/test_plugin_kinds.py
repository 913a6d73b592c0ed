"""Samplers, schedules and job tasks are registered components: diffcore's own through its built-in
plugin, a third party's through the same hooks, and both reach ``diffcore.sample``,
``make_schedule``, the command line and jobs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import diffcore
from diffcore import hookimpl, plugin_host
from diffcore.cli import cli
from diffcore.errors import DiffcoreError, UnknownComponentError
from diffcore.jobs import TASKS, Item, parse_job, run_job
from diffcore.plugin_host import BUILTIN, PluginHost
from diffcore.samplers import ALIASES, SAMPLERS, get_sampler
from diffcore.samplers.ddim import ddim
from diffcore.schedules import SCHEDULES, VPSchedule, make_schedule

torch.set_num_threads(1)
TWO_MODES = "gmm:means=[[-4.0,0.0],[4.0,0.0]]"


class EntryPoint:
    def __init__(self, name, plugin):
        self.name, self.value, self._plugin = name, f"<in memory {name}>", plugin

    def load(self):
        return self._plugin


@pytest.fixture
def installed(monkeypatch):
    """``installed(name=plugin, ...)``: make the process-wide plugin host the built-in plugin plus these."""

    def install(**plugins):
        host = PluginHost(entry_points=[EntryPoint(name, obj) for name, obj in plugins.items()])
        monkeypatch.setattr(plugin_host, "_host", host)
        return host

    return install


# -- a third-party plugin ------------------------------------------------------------------------
@dataclass(frozen=True)
class PlainDDIM:
    """Deterministic DDIM written out step by step, x0 optionally clipped"""

    clip: float | None = None

    def __call__(self, prior, x, ts, *, cond=None, generator=None, callback=None):
        for i in range(len(ts) - 1):
            pred = prior.predict(x, ts[i], cond)
            x0 = pred.x0 if self.clip is None else pred.x0.clamp(-self.clip, self.clip)
            s = torch.as_tensor(ts[i + 1], dtype=torch.float64)
            x = prior.schedule.alpha(s).to(x) * x0 + prior.schedule.sigma(s).to(x) * pred.eps
            if callback is not None:
                callback(i, ts[i], x, pred)
        return x


def slow_vp(beta_max: float = 5.0):
    """A VP SDE with a small beta_max"""
    return VPSchedule(beta_min=0.1, beta_max=beta_max)


def seed_task(scale: int = 1):
    """Writes scale x the item's seed"""
    if not isinstance(scale, int) or scale < 1:
        raise DiffcoreError(f"task 'times-seed': scale must be a positive integer, got {scale!r}")

    def run(item: Item) -> dict[str, bytes]:
        return {".txt": f"{scale * item.seed}\n".encode()}

    return run


class ThirdParty:
    @staticmethod
    @hookimpl
    def register_samplers(register):
        register("plain-ddim", PlainDDIM, aliases=("plainddim",))

    @staticmethod
    @hookimpl
    def register_schedules(register):
        register("slow-vp", slow_vp)

    @staticmethod
    @hookimpl
    def register_tasks(register):
        register("times-seed", seed_task)


def two_modes():
    return diffcore.create("prior", TWO_MODES)


# -- diffcore's own, through its hooks -----------------------------------------------------------
def test_builtin_samplers_schedules_and_task_are_registered_by_the_builtin_plugin():
    samplers = {c.name: c for c in diffcore.available("sampler")}
    assert sorted(samplers) == sorted(SAMPLERS) and {c.plugin for c in samplers.values()} == {BUILTIN}
    assert {a: c.name for c in samplers.values() for a in c.aliases} == ALIASES
    assert samplers["ddim"].options() == ["eta"] and samplers["ddpm"].options() == []
    assert samplers["heun"].options() == ["s_churn", "s_tmin", "s_tmax", "s_noise"]
    assert all(c.summary for c in samplers.values())
    schedules = {c.name: c.plugin for c in diffcore.available("schedules")}
    assert schedules == dict.fromkeys(SCHEDULES, BUILTIN)
    assert [(c.name, c.plugin) for c in diffcore.available("task")] == [("sample", BUILTIN)]
    info = {p.name: p for p in diffcore.plugins()}[BUILTIN]
    assert info.registered["sampler"] == list(SAMPLERS) and info.registered["task"] == ["sample"]


def test_a_sampler_component_is_the_sampler_with_its_options_bound():
    prior = two_modes()
    ts = prior.schedule.timesteps(8)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    bound = diffcore.create("sampler", "ddim", eta=0.5)
    got = bound(prior, x, ts, generator=torch.Generator().manual_seed(1))
    want = ddim(prior, x, ts, generator=torch.Generator().manual_seed(1), eta=0.5)
    assert torch.equal(got, want) and not torch.equal(got, ddim(prior, x, ts))
    assert diffcore.create("sampler", "ddim") is ddim and get_sampler("ancestral") is SAMPLERS["ddpm"]
    assert get_sampler("ddim:eta=0.5").keywords == {"eta": 0.5}
    with pytest.raises(DiffcoreError, match="bad options for sampler 'ddim'.*it accepts: eta"):
        diffcore.create("sampler", "ddim", etta=0.5)
    with pytest.raises(DiffcoreError, match=r"sampler 'euler' does not take option\(s\) eta; it takes: s_churn, s_tmin, s_tmax, s_noise"):
        get_sampler("euler", eta=1.0)


def test_sample_takes_sampler_options_by_keyword_or_inline():
    def draw(**kw):
        return diffcore.sample(two_modes(), 64, steps=8, generator=torch.Generator().manual_seed(2), **kw)

    inline, keyword = draw(sampler="ddim:eta=0.5"), draw(sampler="ddim", eta=0.5)
    assert torch.equal(inline, keyword) and not torch.equal(inline, draw(sampler="ddim"))
    steps = []
    draw(sampler="ddim", callback=lambda i, t, x, pred: steps.append(i))
    assert steps == list(range(8))


def test_unknown_samplers_and_schedules_list_the_registered_ones():
    with pytest.raises(
        UnknownComponentError, match=r"unknown sampler 'eulr'; known samplers: ddpm, ddim, euler, heun, dpm\+\+2m\. Did you mean 'euler'\?"
    ):
        get_sampler("eulr")
    with pytest.raises(
        UnknownComponentError,
        match=r"unknown schedule 'linaer'; known: linear, scaled_linear, cosine, vp, ve, edm \(did you mean 'linear'\?\)",
    ):
        make_schedule("linaer")


# -- a third party's -----------------------------------------------------------------------------
def test_a_plugins_sampler_schedule_and_task_are_listed_with_their_plugin(installed):
    host = installed(acme=ThirdParty)
    assert host.infos["acme"].error is None
    assert host.infos["acme"].registered == {"schedule": ["slow-vp"], "sampler": ["plain-ddim"], "task": ["times-seed"]}
    for kind, name, summary in [
        ("sampler", "plain-ddim", "Deterministic DDIM written out step by step, x0 optionally clipped"),
        ("schedule", "slow-vp", "A VP SDE with a small beta_max"),
        ("task", "times-seed", "Writes scale x the item's seed"),
    ]:
        result = CliRunner().invoke(cli, ["available", kind, "--json"])
        assert result.exit_code == 0, result.output
        listed = {c["name"]: c for c in json.loads(result.stdout)}
        assert listed[name]["plugin"] == "acme" and listed[name]["summary"] == summary
        assert listed["ddim" if kind == "sampler" else "linear" if kind == "schedule" else "sample"]["plugin"] == BUILTIN
        table = CliRunner().invoke(cli, ["available", kind], terminal_width=200).stdout
        assert name in table and "acme" in table
    assert listed["times-seed"]["options"] == ["scale"]


def test_a_plugins_sampler_is_used_by_sample_and_gives_ddims_samples(installed):
    installed(acme=ThirdParty)
    prior = two_modes()

    def draw(sampler, **kw):
        return diffcore.sample(prior, 128, steps=10, sampler=sampler, generator=torch.Generator().manual_seed(3), **kw)

    ours = draw("ddim")
    assert torch.equal(draw("plain-ddim"), ours) and torch.equal(draw("plainddim"), ours)
    clipped = draw("plain-ddim:clip=1.5")  # the last step lands on the clipped x0
    assert float(clipped.abs().max()) <= 1.5 and float(ours.abs().max()) > 3
    assert torch.equal(draw("plain-ddim", clip=1.5), clipped)
    with pytest.raises(DiffcoreError, match=r"sampler 'plain-ddim' does not take option\(s\) eta; it takes: clip"):
        draw("plain-ddim", eta=0.5)


def test_a_plugins_sampler_on_the_command_line(installed, tmp_path):
    installed(acme=ThirdParty)
    out = {name: tmp_path / f"{name}.npy" for name in ("ddim", "plain-ddim")}
    for name, path in out.items():
        result = CliRunner().invoke(
            cli, ["sample", "--prior", TWO_MODES, "--n", "16", "--steps", "6", "--sampler", name, "--out", str(path)]
        )
        assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(out["ddim"]), np.load(out["plain-ddim"]))
    bad = CliRunner().invoke(cli, ["sample", "--prior", TWO_MODES, "--sampler", "plain-ddim:clipp=1", "--out", str(tmp_path / "x.npy")])
    assert bad.exit_code == 2 and "it takes: clip" in bad.stderr and not (tmp_path / "x.npy").exists()


def test_a_plugins_sampler_in_a_jobs_task_options(installed, tmp_path):
    installed(acme=ThirdParty)
    options = {"prior": TWO_MODES, "n": 8, "steps": 5, "sampler": "plain-ddim:clip=1.5"}
    spec = parse_job({"task": "sample", "out": "out", "items": {"seeds": 2}, "options": options}, tmp_path)
    assert run_job(spec, TASKS["sample"]).done == 2
    for seed in range(2):
        want = diffcore.sample(two_modes(), 8, steps=5, sampler="plain-ddim", clip=1.5, generator=torch.Generator().manual_seed(seed))
        assert np.array_equal(np.load(tmp_path / "out" / f"seed-{seed:06d}.npy"), want.numpy())
    bad = parse_job(
        {"task": "sample", "out": "bad", "items": {"seeds": 1}, "options": {**options, "sampler": "plain-ddim:eta=1"}}, tmp_path
    )
    with pytest.raises(DiffcoreError, match="it takes: clip"):
        run_job(bad, TASKS["sample"])
    assert not (tmp_path / "bad").exists()


def test_a_plugins_schedule_through_make_schedule_and_a_priors_options(installed):
    installed(acme=ThirdParty)
    schedule = make_schedule("slow-vp", beta_max=2.0)
    assert schedule == VPSchedule(0.1, 2.0)
    assert make_schedule("slow-vp:beta_max=3.0") == VPSchedule(0.1, 3.0)
    prior = diffcore.create("prior", "gmm", means=[[0.0]], schedule="slow-vp")
    assert prior.schedule == VPSchedule(0.1, 5.0)
    with pytest.raises(
        UnknownComponentError, match=r"known: linear, scaled_linear, cosine, vp, ve, edm, slow-vp \(did you mean 'slow-vp'\?\)"
    ):
        make_schedule("slow-pv")


def test_a_plugins_task_is_run_by_a_job(installed, tmp_path):
    installed(acme=ThirdParty)
    (tmp_path / "job.toml").write_text('task = "times-seed"\nout = "out"\nseed = 10\n[items]\nseeds = 3\n[options]\nscale = 7\n')
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "job.toml")])
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_text() for p in (tmp_path / "out").glob("*.txt")} == {f"seed-{s:06d}.txt": f"{7 * s}\n" for s in (10, 11, 12)}
    assert TASKS["times-seed"].options() == ["scale"] and "times-seed" in TASKS and sorted(TASKS) == ["sample", "times-seed"]
    (tmp_path / "bad.toml").write_text('task = "times-seed"\nout = "bad"\n[items]\nseeds = 1\n[options]\nscael = 7\n')
    bad = CliRunner().invoke(cli, ["run", str(tmp_path / "bad.toml")])
    assert bad.exit_code == 2 and "it accepts: scale (did you mean 'scale'?)" in bad.stderr


# -- the registry's rules hold for the new kinds -------------------------------------------------
class Greedy:
    """Takes a sampler name diffcore has: none of that hook call's registrations are kept."""

    @staticmethod
    @hookimpl
    def register_samplers(register):
        register("greedy-ddim", PlainDDIM)
        register("ancestral", PlainDDIM)


class HalfDone:
    """Raises half-way through registering schedules."""

    @staticmethod
    @hookimpl
    def register_schedules(register):
        register("half-vp", slow_vp)
        raise RuntimeError("lost the rest")


class BadName:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register("Times Seed", seed_task)


class Twice:
    """Registers a task name that another plugin registered first."""

    @staticmethod
    @hookimpl
    def register_tasks(register):
        register("times-seed", seed_task)


def test_staging_and_duplicates_apply_to_samplers_schedules_and_tasks(installed):
    host = installed(acme=ThirdParty, greedy=Greedy, half=HalfDone, bad=BadName, twice=Twice)
    infos = host.infos
    assert (
        "sampler name 'ancestral' is already registered by plugin 'diffcore'; plugin 'greedy' cannot register it again"
        in infos["greedy"].error
    )
    assert infos["half"].error.startswith("failed in register_schedules: RuntimeError: lost the rest")
    assert "invalid task name 'Times Seed' from plugin 'bad'" in infos["bad"].error
    assert "task name 'times-seed' is already registered by plugin 'acme'; plugin 'twice' cannot register it again" in infos["twice"].error
    assert "greedy-ddim" not in host.registry.names("sampler") and "half-vp" not in host.registry.names("schedule")
    assert host.registry.get("sampler", "ancestral").factory is not PlainDDIM
    assert host.registry.get("task", "times-seed").plugin == "acme" and infos["acme"].error is None
    with pytest.raises(UnknownComponentError, match="unknown sampler 'greedy-ddim'"):
        get_sampler("greedy-ddim")


class EagerEntryPoint(EntryPoint):
    """A plugin that builds a schedule by name when it is imported, while the host is loading it."""

    def load(self):
        make_schedule("linear")
        return ThirdParty


def test_a_plugin_reaching_for_a_component_while_loading_is_skipped_not_deadlocked(monkeypatch):
    monkeypatch.setattr(plugin_host, "_host", None)
    monkeypatch.delenv("DIFFCORE_PLUGINS", raising=False)
    monkeypatch.setattr(plugin_host.md, "entry_points", lambda group: [EagerEntryPoint("eager", ThirdParty)])
    infos = {p.name: p for p in diffcore.plugins()}
    assert infos["eager"].error.startswith("failed to import: DiffcoreError: diffcore's plugins are still loading")
    assert infos[BUILTIN].error is None and "slow-vp" not in plugin_host.host().registry.names("schedule")
    assert make_schedule("linear").num_train_timesteps == 1000  # loaded: builds as usual


def test_importing_the_samplers_schedules_and_jobs_loads_no_plugin():
    probe = (
        "import diffcore, diffcore.samplers, diffcore.schedules, diffcore.jobs, diffcore.cli\n"
        "from diffcore import plugin_host\n"
        "print(plugin_host._host is None)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
