"""Hook implementations of {{name}}, and nothing else: each registers factories, cheaply.

diffcore calls these hooks whenever it loads plugins, for whatever component a user asks for,
so they import nothing heavy: the component modules need only torch and diffcore, which are
loaded already, and a component that needs a heavy library imports it inside its factory.
"""

from diffcore import hookimpl


@hookimpl
def register_priors(register):
    from {{import_name}}.prior import IsotropicGaussian

    register("{{name}}-gaussian", IsotropicGaussian)


@hookimpl
def register_operators(register):
    from {{import_name}}.mask import CoordinateMask

    register("{{name}}-mask", CoordinateMask)


@hookimpl
def register_samplers(register):
    from {{import_name}}.sampler import PlainDDIM

    register("{{name}}-ddim", PlainDDIM)
