"""{{name}}: a diffcore plugin with an example prior, an example measurement operator and an
example sampler.

Users reach the components through diffcore (``diffcore.create("prior", "{{name}}-gaussian")``,
``diffcore.sample(prior, 16, steps=20, sampler="{{name}}-ddim")``); the classes are importable
here too.
"""

from importlib.metadata import PackageNotFoundError, version

from {{import_name}}.mask import CoordinateMask
from {{import_name}}.prior import IsotropicGaussian
from {{import_name}}.sampler import PlainDDIM

try:
    __version__ = version("{{name}}")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["CoordinateMask", "IsotropicGaussian", "PlainDDIM"]
