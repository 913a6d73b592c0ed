"""Hook implementations of diff-zoo, and nothing else: each registers factories, cheaply.

No weights are read here: a factory loads them when a user asks for the prior.
"""

from __future__ import annotations

from diffcore import hookimpl


def digits(path=None, device=None, dtype=None, clip_x0=None):
    """Class-conditional 16x16 digits (scikit-learn), 10 classes plus a null class for guidance"""
    from diff_zoo.priors import load

    return load("digits", path=path, device=device, dtype=dtype, clip_x0=clip_x0)


def patches(path=None, device=None, dtype=None, clip_x0=None):
    """Unconditional 32x32 RGB photo patches (scikit-image, scikit-learn), fully convolutional"""
    from diff_zoo.priors import load

    return load("patches", path=path, device=device, dtype=dtype, clip_x0=clip_x0)


def textures(path=None, device=None, dtype=None, clip_x0=None):
    """Brick, grass and gravel textures, 32x32, one channel, conditional on the texture, fully convolutional"""
    from diff_zoo.priors import load

    return load("textures", path=path, device=device, dtype=dtype, clip_x0=clip_x0)


def phantoms(path=None, device=None, dtype=None, clip_x0=None):
    """64x64 one-channel random-ellipse phantoms for CT and MRI reconstruction"""
    from diff_zoo.priors import load

    return load("phantoms", path=path, device=device, dtype=dtype, clip_x0=clip_x0)


@hookimpl
def register_priors(register):
    for factory in (digits, patches, textures, phantoms):
        register(f"zoo:{factory.__name__}", factory)


@hookimpl
def register_commands(cli):
    from diff_zoo.cli import zoo

    cli.add_command(zoo, "zoo")


def tour(tour):
    """Samples of each shipped zoo prior next to real held-out data, with its card's headline figure"""
    from diff_zoo.tour_section import section

    section(tour)


@hookimpl
def register_tour(register):
    register("zoo", tour, summary="Samples of each shipped zoo prior next to real held-out data, with its card's headline figure")
