"""Meta-tests that keep the plugin surface honest, as datasette's do.

- every hook spec (diffcore's, and any a loaded plugin adds) has a docstring that names its
  arguments, and appears in the docs with its exact signature;
- the plugin author's guide documents no hook that does not exist;
- the examples of the plugin guide and the architecture page run;
- every hook has a test: some test file implements it in a test plugin. The commands and tour
  hooks, which the kernel's own tests do not reach, are exercised here.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import diffcore.hookspecs
from diffcore import hookimpl
from diffcore.plugin_host import PluginHost, host

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
HEADING = re.compile(r"^### `(\w+\(.*\))`$", re.M)
PYTHON_BLOCK = re.compile(r"^(?P<indent> *)```python\n(?P<code>.*?)^(?P=indent)```", re.M | re.S)


def _specs(namespace) -> dict[str, object]:
    marker = f"{diffcore.hookspecs.PROJECT}_spec"
    return {name: fn for name, fn in inspect.getmembers(namespace) if hasattr(fn, marker)}


def _signature(name: str, fn) -> str:
    return f"{name}{inspect.signature(fn)}"


KERNEL_SPECS = _specs(diffcore.hookspecs)


def _loaded_plugin_specs() -> dict[str, object]:
    """Hook specs that installed plugins add (``hookspecs`` attributes), by name."""
    specs = {}
    for name in vars(host().pm.hook):
        caller = getattr(host().pm.hook, name)
        if name.startswith("_") or name in KERNEL_SPECS or not caller.has_spec():
            continue
        specs[name] = caller.spec.function
    return specs


def _test_files() -> list[Path]:
    pattern = ["packages/*/tests/**/*.py", "plugins/*/tests/**/*.py", "integration_tests/**/*.py"]
    return sorted({p for g in pattern for p in ROOT.glob(g)})


def test_the_kernel_has_the_hooks_of_the_design():
    assert sorted(KERNEL_SPECS) == sorted(
        [
            "register_priors",
            "register_schedules",
            "register_samplers",
            "register_operators",
            "register_solvers",
            "register_representations",
            "register_distillers",
            "register_tasks",
            "register_commands",
            "register_tour",
        ]
    )


def test_every_component_hook_fills_a_kind():
    from diffcore.registry import KINDS

    assert sorted(KINDS.values()) == sorted(n for n in KERNEL_SPECS if n != "register_commands")


@pytest.mark.parametrize("name", sorted(KERNEL_SPECS))
def test_hookspec_has_a_docstring_naming_its_arguments(name):
    fn = KERNEL_SPECS[name]
    doc = inspect.getdoc(fn)
    assert doc and len(doc.splitlines()[0]) > 20, f"{name} needs a docstring: it is the plugin author's reference"
    for arg in inspect.signature(fn).parameters:
        assert f"``{arg}" in doc, f"the docstring of {name} does not show how to use {arg!r}"


@pytest.mark.parametrize("name", sorted(KERNEL_SPECS))
def test_hookspec_is_in_the_plugin_guide_with_its_exact_signature(name):
    documented = HEADING.findall(GUIDE.read_text())
    assert _signature(name, KERNEL_SPECS[name]) in documented, (
        f"docs/plugins.md needs a heading ### `{_signature(name, KERNEL_SPECS[name])}`"
    )


def test_plugin_guide_documents_no_hook_that_does_not_exist():
    actual = {_signature(n, fn) for n, fn in KERNEL_SPECS.items()}
    stale = [h for h in HEADING.findall(GUIDE.read_text()) if h.startswith("register_") and h not in actual]
    assert not stale, f"docs/plugins.md documents hooks that hookspecs.py does not declare (or with another signature): {stale}"


def test_hookspecs_of_loaded_plugins_are_documented():
    docs = "\n".join(p.read_text() for p in DOCS)
    for name, fn in _loaded_plugin_specs().items():
        assert inspect.getdoc(fn), f"hook spec {name} (added by a plugin) has no docstring"
        assert f"`{_signature(name, fn)}`" in docs, f"hook spec {_signature(name, fn)} (added by a plugin) is not documented under docs/"


def test_every_hook_has_a_test():
    names = {**KERNEL_SPECS, **_loaded_plugin_specs()}
    sources = {p: p.read_text() for p in _test_files()}
    for name in names:
        impl = re.compile(rf"^\s*def {name}\(", re.M)
        assert any(impl.search(text) for text in sources.values()), f"no test implements the hook {name} in a test plugin"


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """The ```python blocks of a markdown text (also indented ones, in lists) with their line numbers."""
    blocks = []
    for m in PYTHON_BLOCK.finditer(markdown):
        indent = m.group("indent")
        code = "\n".join(line.removeprefix(indent) for line in m.group("code").splitlines())
        blocks.append((markdown.count("\n", 0, m.start()) + 2, code))
    return blocks


RUN_BLOCKS = """
    import json, sys
    blocks = json.load(open(sys.argv[-1]))
    namespace = {"__name__": "__docs__"}
    for label, code in blocks:
        exec(compile(code, label, "exec"), namespace)
    print(json.dumps(len(blocks)))
    """


@pytest.mark.parametrize("page", ["plugins.md", "architecture.md"])
def test_docs_examples_run(page, tmp_path, run_command):
    """Every ```python block of the page runs, top to bottom in one namespace, in a fresh process."""
    blocks = python_blocks((ROOT / "docs" / page).read_text())
    assert len(blocks) >= 3
    (tmp_path / "blocks.json").write_text(json.dumps([(f"docs/{page}, line {line}", code) for line, code in blocks]))
    proc = run_command([sys.executable, "-c", inspect.cleandoc(RUN_BLOCKS), str(tmp_path / "blocks.json")], cwd=tmp_path)
    assert proc.stdout.strip() == str(len(blocks))


# -- the commands and tour hooks, through a plugin ---------------------------------------------


@click.command("hello-meta")
@click.option("--name", default="world")
def hello_meta(name):
    """Say hello."""
    click.echo(f"hello {name}")


class CommandsPlugin:
    @staticmethod
    @hookimpl
    def register_commands(cli):
        cli.add_command(hello_meta)


class GreedyCommandsPlugin:
    """Adds a command, then tries to replace one that exists."""

    @staticmethod
    @hookimpl
    def register_commands(cli):
        cli.add_command(click.Command("harmless"), "harmless")
        cli.add_command(click.Command("plugins"), "plugins")


class FailingCommandsPlugin:
    @staticmethod
    @hookimpl
    def register_commands(cli):
        cli.add_command(click.Command("left-behind"), "left-behind")
        raise RuntimeError("no commands today")


def _root_cli() -> click.Group:
    cli = click.Group("diffcore")
    cli.add_command(click.Command("plugins", callback=lambda: click.echo("the real one")), "plugins")
    return cli


def test_register_commands_adds_a_plugin_command(entry_point):
    plugins = PluginHost(entry_points=[entry_point("meta-commands", CommandsPlugin)])
    cli = _root_cli()
    plugins.register_commands(cli)
    result = CliRunner().invoke(cli, ["hello-meta", "--name", "plugins"])
    assert result.exit_code == 0 and result.output == "hello plugins\n"
    assert plugins.infos["meta-commands"].registered == {"command": ["hello-meta"]}


def test_register_commands_guards_each_plugin(entry_point):
    eps = [
        entry_point("greedy", GreedyCommandsPlugin),
        entry_point("failing", FailingCommandsPlugin),
        entry_point("meta-commands", CommandsPlugin),
    ]
    plugins = PluginHost(entry_points=eps)
    cli = _root_cli()
    plugins.register_commands(cli)
    assert sorted(cli.commands) == ["hello-meta", "plugins"]
    assert CliRunner().invoke(cli, ["plugins"]).output == "the real one\n"
    assert (
        "command 'plugins' is already registered by plugin 'diffcore'; plugin 'greedy' cannot register it again"
        in plugins.infos["greedy"].error
    )
    assert plugins.infos["failing"].error.startswith("failed in register_commands: RuntimeError: no commands today")
    assert plugins.infos["meta-commands"].error is None


def test_plugin_command_reaches_the_diffcore_command_line(tmp_path, make_distribution, run_command, console_script):
    make_distribution(
        tmp_path,
        "fake-hello",
        entry_points={"hello": "hello_plugin"},
        files={
            "hello_plugin.py": """
                import click
                from diffcore import hookimpl

                @click.command("hello-meta")
                @click.argument("who")
                def hello(who):
                    click.echo(f"hello {who}")

                @hookimpl
                def register_commands(cli):
                    cli.add_command(hello)
                """
        },
    )
    proc = run_command([str(console_script("diffcore")), "hello-meta", "plugins"], path=[tmp_path])
    assert proc.stdout == "hello plugins\n"


def meta_section(tour):
    """Counts to three"""
    for i in tour.progress(range(3), "counting"):
        tour.metric("counted", i + 1)
    tour.text("Counted to **three**.")


class TourPlugin:
    @staticmethod
    @hookimpl
    def register_tour(register):
        register("meta-tour", meta_section)


class BrokenTourPlugin:
    @staticmethod
    @hookimpl
    def register_tour(register):
        register("meta-broken", meta_section)
        raise ImportError("the broken section needs a missing package")


def test_register_tour_adds_a_section(entry_point):
    plugins = PluginHost(entry_points=[entry_point("meta-tour", TourPlugin), entry_point("meta-broken", BrokenTourPlugin)])
    section = plugins.registry.get("tour", "meta-tour")
    assert (section.plugin, section.summary, section.factory) == ("meta-tour", "Counts to three", meta_section)
    assert "meta-broken" not in plugins.registry.names("tour")
    assert "ImportError: the broken section needs a missing package" in plugins.infos["meta-broken"].error


def test_a_plugins_tour_section_runs_in_the_tour(tmp_path, entry_point):
    from diffcore.tour import Section, run_section

    plugins = PluginHost(entry_points=[entry_point("meta-tour", TourPlugin)])
    component = plugins.registry.get("tour", "meta-tour")
    result = run_section(Section(component.name, component.factory, component.summary, component.plugin), tmp_path)
    assert result.status == "ok", result.error
    assert len(result.blocks) == 4  # three metrics and the text
