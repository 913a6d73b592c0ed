"""The hooks a diffcore plugin implements. This file is the plugin author's reference.

A plugin is a module (or object) named by an entry point in the ``diffcore`` group::

    [project.entry-points.diffcore]
    myplugin = "my_package.plugin"

and implements any of the hooks below with the :data:`hookimpl` marker::

    from diffcore import hookimpl

    @hookimpl
    def register_priors(register):
        register("my-prior", MyPrior, summary="What it is, in one line")

Every ``register_*`` hook receives one ``register(name, factory, *, aliases=(), summary=None)``
callable. ``factory(**options)`` builds the component when a user asks for it
(``diffcore.create(kind, name, **options)``); ``summary`` defaults to the first line of the
factory's docstring. Hooks must be cheap and side-effect free: register factories only, no
weight loading, no downloads, no heavy imports (import inside the factory instead). A factory
whose optional dependency is missing raises ImportError naming the fix, for example
``pip install "diff-3d[nerfstudio]"``.

Names are lowercase (letters, digits, ``-``, ``_``, ``.``, ``:``). A name or alias that another
plugin already registered is rejected, naming both plugins, and none of that hook's
registrations from the second plugin are kept. Specs only grow: arguments are added, never
renamed or removed.
"""

from __future__ import annotations

import pluggy

PROJECT = "diffcore"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_priors(register):
    """Register prior factories. A factory returns an object satisfying :class:`diffcore.protocols.Prior`.

    ``register("gmm", GaussianMixturePrior, summary="Gaussian mixture with exact scores")``
    """


@hookspec
def register_schedules(register):
    """Register noise schedule factories. A factory takes the schedule's options and returns an object
    satisfying :class:`diffcore.protocols.Schedule`: ``alpha(t)``, ``sigma(t)`` for t in [0, 1] with
    ``alpha(0) = 1``, ``sigma(0) = 0``, and ``timesteps(steps)``, the decreasing grid a sampler walks.

    ``register("vp", VPSchedule)``; then ``diffcore.schedules.make_schedule("vp", beta_max=10.0)``
    and priors that take ``schedule="vp"`` build it.
    """


@hookspec
def register_samplers(register):
    """Register samplers. The factory takes the sampler's options and returns the sampler: a callable
    ``sampler(prior, x, ts, *, cond=None, generator=None, callback=None) -> x0`` with those options
    bound, which walks the decreasing grid ``ts`` from the noise ``x`` at ``ts[0]``, calls
    ``callback(i, t, x, prediction)`` after each step, draws randomness only from ``generator``
    and keeps no state between calls (a frozen dataclass is a good factory). A sampler function
    that takes its options as keywords registers through
    :func:`diffcore.samplers.factory.sampler_factory`.

    ``register("ddim", sampler_factory(ddim))``; then ``diffcore.create("sampler", "ddim", eta=0.5)``
    is the bound sampler, and ``diffcore.sample(prior, n, steps=20, sampler="ddim", eta=0.5)``,
    ``diffcore sample --sampler ddim:eta=0.5`` and a job's ``sampler = "ddim:eta=0.5"`` use it.
    """


@hookspec
def register_operators(register):
    """Register measurement operator factories (:class:`diffcore.protocols.Operator`).

    ``register("inpaint", Inpainting, aliases=("inpainting",))``
    """


@hookspec
def register_solvers(register):
    """Register posterior solver factories. As for every kind, the factory takes the user's
    options and returns the component: here a callable
    ``solver(prior, operator, y, *, steps, generator=None) -> x`` (:class:`diffcore.protocols.Solver`),
    typically a frozen dataclass holding the options.

    ``register("dps", DPS)`` where ``DPS(zeta=1.0)(prior, operator, y, steps=50)`` samples.
    """


@hookspec
def register_representations(register):
    """Register differentiable representations. The factory takes the representation's options and
    returns an object with ``render(camera) -> images`` (N, C, H, W) in [-1, 1], differentiable in
    its ``parameters()`` (:class:`diffcore.protocols.Representation`); a 3-D one also renders
    ``render_outputs(camera) -> Rendering`` (rgb, depth, accumulation, normals) and gives
    ``density(points)``, ``colors(points)`` and ``bounds`` (:class:`diffcore.protocols.Representation3D`).
    Cameras are :class:`diffcore.protocols.Camera` batches (nerfstudio's convention).

    ``register("voxel", VoxelGrid)``; then ``diffcore.create("representation", "voxel:resolution=64")``.
    """


@hookspec
def register_distillers(register):
    """Register score-distillation objectives. The factory takes the objective's options and returns a
    :class:`diffcore.protocols.LossDistiller`: ``loss(prior, images, cond, *, step, total_steps,
    generator, camera=None) -> Distillation`` (the loss whose gradient on the images is the
    distillation gradient, stop-gradient form, plus logs), ``parameters()`` and ``update(...)`` for
    parameters of its own; :class:`diffcore.protocols.DistillerBase` gives ``grad``, the kernel 0.1
    :class:`diffcore.protocols.Distiller` method, and the defaults.

    ``register("sds", SDS)``; then ``diffcore.create("distiller", "sds:guidance_scale=7.5")``.
    """


@hookspec
def register_tasks(register):
    """Register job tasks, what ``diffcore run`` does to each item (:mod:`diffcore.jobs`). The factory
    takes the job file's ``[options]``, checks them, builds what every item shares once, and returns
    ``run(item) -> {suffix: bytes}``; the runner writes each value to ``OUT/<item.key><suffix>``
    atomically. ``run`` must be deterministic given the item (randomness from
    ``torch.Generator().manual_seed(item.seed)``), so a resumed or sharded job writes the same bytes.

    ``register("sample", sample_task)``; a job file then names it: ``task = "sample"``.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``diffcore`` command line. ``cli`` is the root :class:`click.Group`.

    ``cli.add_command(inverse_group, "inverse")``. Import heavy modules inside the command.
    """


@hookspec
def register_tour(register):
    """Register a section of the ``diffcore tour`` report.

    ``register("inverse", section, summary="...")`` where ``section(tour)`` receives a
    :class:`diffcore.tour.Tour` and adds images, plots, tables and text to it. A section should
    finish in about a minute on a 2-core CPU using the shipped priors.
    """
