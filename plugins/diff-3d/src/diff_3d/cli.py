"""``diffcore 3d``: distil a prior into a representation (``distill``), export a trained one (``export``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from diffcore.devices import device_options
from diffcore.errors import DiffcoreError


@click.group("3d")
def three_d() -> None:
    """2-D priors to 3-D by score distillation (SDS, SJC, VSD); nerfstudio methods diff-sds, diff-sjc, diff-vsd."""


@three_d.command("distill")
@click.option(
    "--prior",
    "prior_spec",
    required=True,
    metavar="SPEC",
    help="Any diffcore prior: zoo:digits, zoo:patches, stable-diffusion:path=DIR, analytic-scene, collage:...",
)
@click.option("--prompt", default=None, help="Text condition (text-conditional priors).")
@click.option("--label", default=None, help="Class label, index or name (class-conditional priors).")
@click.option(
    "--distiller",
    "distiller_spec",
    default="sds",
    show_default=True,
    metavar="SPEC",
    help="sds | sjc | vsd, with options: sds:guidance_scale=7.5,weighting=uniform.",
)
@click.option(
    "--representation",
    "representation_spec",
    default="voxel",
    show_default=True,
    metavar="SPEC",
    help="image | voxel | triplane | nerfacto, with options: voxel:resolution=48.",
)
@click.option("--steps", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=None, type=float, help="Adam's learning rate (default: 0.05 voxel, 0.02 triplane, 0.01 nerfacto and image).")
@click.option("--size", default=32, show_default=True, type=click.IntRange(min=4), help="Render size in pixels (square).")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1), help="Cameras per step.")
@click.option(
    "--fov", nargs=2, type=float, default=(50.0, 50.0), show_default=True, help="Field of view range in degrees (analytic-scene sees 50)."
)
@click.option("--elevation", nargs=2, type=float, default=(-10.0, 45.0), show_default=True, help="Elevation range in degrees.")
@click.option(
    "--azimuth", nargs=2, type=float, default=(-180.0, 180.0), show_default=True, help="Azimuth range in degrees (0 is the front)."
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder: run.json, representation.safetensors, a picture.",
)
@device_options
def distill_command(
    prior_spec,
    prompt,
    label,
    distiller_spec,
    representation_spec,
    steps,
    lr,
    size,
    batch,
    fov,
    elevation,
    azimuth,
    seed,
    out,
    device,
    dtype,
):
    """Distil a prior into a representation on this machine (no nerfstudio trainer); then `diffcore 3d export --config OUT`."""
    import torch

    import diffcore
    from diff_3d.cameras import CameraSampler
    from diff_3d.conditioning import condition
    from diff_3d.distill import distill
    from diff_3d.export import gif_bytes, turntable_frames
    from diff_3d.runs import save_run
    from diff_3d.validation import LEARNING_RATES
    from diffcore.devices import build_prior
    from diffcore.registry import parse_spec
    from diffcore.tour import encode_png, image_grid, write_atomic

    prior = build_prior(prior_spec, device=device, dtype=dtype)
    cond = condition(prior, prompt=prompt, label=label)
    rep_name, _ = parse_spec(representation_spec)
    representation = diffcore.create("representation", representation_spec)
    if device is not None:
        representation = representation.to(device)
    distiller = diffcore.create("distiller", distiller_spec)
    cameras = CameraSampler(size=size, fov=tuple(fov), elevation=tuple(elevation), azimuth=tuple(azimuth))
    lr = lr if lr is not None else LEARNING_RATES.get(rep_name, 0.01)
    start = time.perf_counter()
    record = distill(
        prior,
        representation,
        distiller,
        steps=steps,
        lr=lr,
        cond=cond,
        cameras=cameras,
        batch=batch,
        generator=torch.Generator().manual_seed(seed),
        progress=True,
    )
    settings = {
        "prior": prior_spec,
        "prompt": prompt,
        "label": label,
        "distiller": distiller_spec,
        "steps": steps,
        "lr": lr,
        "seed": seed,
        "cameras": {"size": size, "fov": list(fov), "elevation": list(elevation), "azimuth": list(azimuth), "radius": list(cameras.radius)},
        "losses": record.losses,
        "seconds": time.perf_counter() - start,
    }
    run_file = save_run(out, representation, representation_spec, settings)
    representation.eval()
    with torch.no_grad():
        if rep_name == "image":
            picture = write_atomic(Path(out) / "image.png", encode_png(image_grid(representation.render(None).float().cpu())))
        else:
            picture = write_atomic(Path(out) / "turntable.gif", gif_bytes(turntable_frames(representation, cameras.turntable(24))))
    click.echo(f"{record.steps} steps in {settings['seconds']:.0f} s ({record.iterations_per_s or 0:.1f} it/s): {run_file}, {picture}")


@three_d.command("export")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="A nerfstudio run's config.yml (outputs/.../config.yml) or a diffcore 3d run folder / run.json.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the files (default: export/ next to the config).",
)
@click.option("--formats", default="ply,obj,glb", show_default=True, help="Mesh formats, comma-separated: ply, obj, glb.")
@click.option("--resolution", default=128, show_default=True, type=click.IntRange(min=2), help="Marching-cubes grid cells per side.")
@click.option(
    "--threshold", default=None, type=float, help="The density of the surface (marching cubes' level; default: half the largest density)."
)
@click.option("--opacity", default=0.5, show_default=True, type=float, help="Pixels more opaque than this give points of the point cloud.")
@click.option("--frames", default=36, show_default=True, type=click.IntRange(min=1), help="Turntable frames.")
@click.option("--size", default=96, show_default=True, type=click.IntRange(min=4), help="Turntable and point-cloud views' size in pixels.")
@click.option("--device", default="cpu", show_default=True, help="Where to evaluate the representation.")
def export_command(config_path, out, formats, resolution, threshold, opacity, frames, size, device):
    """Mesh (marching cubes, .ply/.obj/.glb with vertex colours), point cloud (.ply) and turntable GIF of a trained representation."""
    from diff_3d.export import MESH_FORMATS, gif_bytes, mesh, point_cloud, turntable_frames, write_mesh
    from diff_3d.representations.gaussians import Gaussians
    from diff_3d.runs import load_any
    from diffcore.tour import write_atomic

    suffixes = [f".{f.strip().lower().lstrip('.')}" for f in formats.split(",") if f.strip()]
    unknown = [s for s in suffixes if s not in MESH_FORMATS]
    if unknown:
        raise DiffcoreError(f"unknown mesh format {unknown[0][1:]!r}; use ply, obj or glb")
    representation = load_any(config_path, device=device)
    out = out if out is not None else (config_path.parent if config_path.suffix else config_path) / "export"
    out.mkdir(parents=True, exist_ok=True)
    surface = mesh(representation, resolution=resolution, threshold=threshold)
    written = [write_mesh(surface, out / f"mesh{suffix}") for suffix in suffixes]
    views = _views(config_path, size)
    written.append(write_mesh(point_cloud(representation, views.turntable(12), opacity=opacity), out / "points.ply"))
    written.append(write_atomic(out / "turntable.gif", gif_bytes(turntable_frames(representation, views.turntable(frames)))))
    if isinstance(representation, Gaussians):  # also the 3DGS .ply that splat viewers read
        written.append(write_atomic(out / "splats.ply", representation.splat_ply()))
    report = {"threshold": surface.metadata["threshold"], "vertices": len(surface.vertices), "faces": len(surface.faces)}
    click.echo(json.dumps({**report, "files": [str(p) for p in written]}))


def _views(config_path: Path, size: int):
    """Cameras like the run's (its radius and elevation range) at ``size`` pixels."""
    from diff_3d.cameras import CameraSampler

    if config_path.suffix in (".yml", ".yaml"):
        return CameraSampler(size=size)
    run_file = config_path / "run.json" if config_path.is_dir() else config_path
    cameras = json.loads(run_file.read_text()).get("cameras", {})
    return CameraSampler(
        size=size,
        radius=tuple(cameras.get("radius", (2.2, 2.8))),
        elevation=tuple(cameras.get("elevation", (-10.0, 45.0))),
        fov=tuple(cameras.get("fov", (50.0, 50.0))),
    )
