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
    """Register differentiable representations (:class:`diffcore.protocols.Representation`).

    ``register("voxel", VoxelGrid)``
    """


@hookspec
def register_distillers(register):
    """Register score-distillation objectives (:class:`diffcore.protocols.Distiller`).

    ``register("sds", ScoreDistillation)``
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
