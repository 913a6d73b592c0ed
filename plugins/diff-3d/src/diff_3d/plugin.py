"""Hook implementations of diff-3d (registration only; torch modules, nerfstudio and diffusers are imported in factories)."""

from __future__ import annotations

from diffcore import hookimpl


def image(size: int = 32, channels: int = 3, height: int | None = None, width: int | None = None, init_std: float = 0.0, seed: int = 0):
    """A free image, the same for every camera: 2-D distillation"""
    from diff_3d.representations.image import ImageRepresentation

    return ImageRepresentation(size, channels, height=height, width=width, init_std=init_std, seed=seed)


def voxel(resolution: int = 32, half_size: float = 1.0, samples: int = 64, background=1.0, channels: int = 3, shift: float = 4.0):
    """A voxel grid of density and colour, trilinear (Score Jacobian Chaining's representation)"""
    from diff_3d.representations.voxel import VoxelGrid

    return VoxelGrid(resolution, half_size=half_size, samples=samples, background=background, channels=channels, shift=shift)


def triplane(
    resolution: int = 32,
    features: int = 8,
    hidden: int = 32,
    half_size: float = 1.0,
    samples: int = 64,
    background=1.0,
    channels: int = 3,
    shift: float = 4.0,
    seed: int = 0,
):
    """Three axis-aligned feature planes and a small MLP decoder (EG3D)"""
    from diff_3d.representations.triplane import Triplane

    return Triplane(
        resolution, features, hidden, half_size=half_size, samples=samples, background=background, channels=channels, shift=shift, seed=seed
    )


def nerfacto(
    half_size: float = 1.0,
    background=1.0,
    max_res: int = 128,
    num_levels: int = 8,
    log2_hashmap_size: int = 15,
    proposal_samples=(64, 32),
    samples: int = 32,
    interlevel_weight: float = 1.0,
    distortion_weight: float = 0.01,
    seed: int = 0,
):
    """nerfstudio's nerfacto-style hash-grid field with proposal sampling (torch implementation, runs on a CPU)"""
    from diff_3d.representations.nerfacto import NerfactoField

    return NerfactoField(
        half_size=half_size,
        background=background,
        max_res=max_res,
        num_levels=num_levels,
        log2_hashmap_size=log2_hashmap_size,
        proposal_samples=tuple(proposal_samples),
        samples=samples,
        interlevel_weight=interlevel_weight,
        distortion_weight=distortion_weight,
        seed=seed,
    )


def gaussians(
    count: int = 1000,
    capacity: int | None = None,
    half_size: float = 1.0,
    init_radius: float = 0.6,
    init_scale: float = 0.06,
    init_opacity: float = 0.1,
    background=1.0,
    channels: int = 3,
    densify_every: int = 0,
    densify_from: int = 100,
    densify_until: int | None = None,
    grow: float = 0.1,
    min_opacity: float = 0.005,
    backend: str = "torch",
    seed: int = 0,
):
    """3-D Gaussians (3D Gaussian Splatting): a plain-torch rasteriser (gsplat on CUDA), densification and pruning"""
    from diff_3d.representations.gaussians import Gaussians

    return Gaussians(
        count,
        capacity,
        half_size=half_size,
        init_radius=init_radius,
        init_scale=init_scale,
        init_opacity=init_opacity,
        background=background,
        channels=channels,
        densify_every=densify_every,
        densify_from=densify_from,
        densify_until=densify_until,
        grow=grow,
        min_opacity=min_opacity,
        backend=backend,
        seed=seed,
    )


@hookimpl
def register_representations(register):
    register("image", image)
    register("voxel", voxel, aliases=("voxels",))
    register("triplane", triplane)
    register("nerfacto", nerfacto)
    register("gaussians", gaussians, aliases=("splats",))


@hookimpl
def register_distillers(register):
    from diff_3d.distillers import SDS, SJC, VSD

    register("sds", SDS, summary="Score distillation sampling (DreamFusion); weightings sds, uniform, fantasia3d; t annealing")
    register("sjc", SJC, summary="Score Jacobian Chaining: Perturb-and-Average Scoring over `draws` noise samples")
    register("vsd", VSD, summary="Variational score distillation (ProlificDreamer): a LoRA or small second model trained alongside")


def analytic_scene(size: int = 32, fov: float = 50.0, std: float = 0.02):
    """The exact view-conditioned prior of a known scene of coloured blobs: N(render(camera), std^2 I)"""
    from diff_3d.analytic import SceneViewPrior

    return SceneViewPrior(size=size, fov=fov, std=std)


def shapes(path=None, points=None, device=None, dtype=None):
    """Class-conditional point clouds (512 points) of spheres, boxes, tori, cylinders and cones: point-voxel diffusion (PVD)"""
    from diff_3d.points.zoo import load

    return load(path=path, points=points, device=device, dtype=dtype)


def views(path=None, device=None, dtype=None, clip_x0=None):
    """Novel 32x32 views of procedural scenes from one reference view and the relative pose: Cond(image=reference, camera=relative)"""
    from diff_3d.views.zoo import load

    return load(path=path, device=device, dtype=dtype, clip_x0=clip_x0)


@hookimpl
def register_priors(register):
    register("analytic-scene", analytic_scene)
    register("zoo:shapes", shapes)
    register("zoo:views", views)


@hookimpl
def register_commands(cli):
    from diff_3d.cli import three_d
    from diff_3d.points.cli import points

    three_d.add_command(points, "points")
    cli.add_command(three_d, "3d")


def tour(tour):
    """A scene recovered from its exact view-conditioned prior, and a zoo prior distilled into an image and a voxel object"""
    from diff_3d.tour_section import section

    section(tour)


def tour_points(tour):
    """zoo:shapes: one generated point cloud per class, and halves of held-out shapes completed by replacement"""
    from diff_3d.points.tour_section import section

    section(tour)


def tour_views(tour):
    """zoo:views: new views of held-out scenes drawn from one reference view and the relative pose"""
    from diff_3d.views.tour_section import section

    section(tour)


@hookimpl
def register_tour(register):
    register("3d", tour, summary="A known scene recovered by score distillation (turntable), and a zoo prior distilled to 2-D and 3-D")
    register("3d-points", tour_points, summary="zoo:shapes: point clouds generated per class, and shapes completed by replacement")
    register("3d-views", tour_views, summary="zoo:views: new views of held-out scenes from one reference view and a relative pose")
