"""Hook implementations of diff-collage (registration only; the factories import the rest when called)."""

from diffcore import hookimpl


@hookimpl
def register_priors(register):
    from diff_collage.spec import collage_prior  # light: graphs and the prior wrapper, no weights

    register("collage", collage_prior)


@hookimpl
def register_commands(cli):
    from diff_collage.cli import collage_command

    cli.add_command(collage_command, "collage")


@hookimpl
def register_tour(register):
    from diff_collage.tour_section import section

    register(
        "collage",
        section,
        summary=(
            "A long texture strip, a seamless loop and a grid canvas from 32x32 windows: DiffCollage next to MultiDiffusion, with seam "
            "scores"
        ),
    )
