"""diff-3d is found by diffcore and by nerfstudio; registration and method discovery stay cheap."""

import subprocess
import sys

import diffcore


def test_diffcore_lists_what_diff_3d_registers():
    (info,) = [p for p in diffcore.plugins() if p.name == "3d"]
    assert info.error is None, info.error
    components = {kind: names for kind, names in info.registered.items() if kind != "command"}  # commands: once the CLI has started
    assert components == {
        "prior": ["analytic-scene", "zoo:shapes", "zoo:views"],
        "representation": ["image", "voxel", "triplane", "nerfacto", "gaussians"],
        "distiller": ["sds", "sjc", "vsd"],
        "tour": ["3d", "3d-points", "3d-views"],
    }
    from click.testing import CliRunner

    from diffcore.cli import cli

    res = CliRunner().invoke(cli, ["3d", "--help"])
    assert res.exit_code == 0 and "distill" in res.output and "export" in res.output
    assert info.registered.get("command") == ["3d"]
    options = {c.name: c.options() for c in diffcore.available("distiller")}
    assert {"guidance_scale", "weighting", "t_min", "t_max", "t_end", "anneal", "grad_clip"} <= set(options["sds"])
    assert "draws" in options["sjc"] and {"second", "lora_rank", "camera_embedding"} <= set(options["vsd"])


def test_registration_and_method_discovery_import_nothing_heavy():
    probe = (
        "import sys, diffcore; diffcore.available('distiller'); diffcore.available('representation');"
        "from nerfstudio.plugins.registry import discover_methods; methods, descriptions = discover_methods();"
        "print(sorted(m for m in methods if m.startswith('diff-')));"
        "print(sorted(m for m in ('diffusers', 'transformers', 'peft', 'skimage', 'trimesh') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-2] == "['diff-in2n', 'diff-sds', 'diff-sjc', 'diff-vsd', 'diff-zero123']"
    assert out[-1] == "[]"
