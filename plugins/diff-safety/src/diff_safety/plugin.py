"""Hook implementations of diff-safety (registration only; heavy imports stay in the functions)."""

from diffcore import hookimpl


@hookimpl
def register_commands(cli):
    from diff_safety.cli import safety

    cli.add_command(safety, "safety")


@hookimpl
def register_tour(register):
    from diff_safety.tour_section import section

    register(
        "safety",
        section,
        summary="Memorisation rises with duplication (the measured recipe) and a digit erased from zoo:digits, before and after",
    )
