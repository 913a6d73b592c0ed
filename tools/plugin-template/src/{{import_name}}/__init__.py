"""{{name}}: a diffcore plugin with an example prior and an example measurement operator.

Users reach the components through diffcore (``diffcore.create("prior", "{{name}}-gaussian")``);
the classes are importable here too.
"""

from importlib.metadata import PackageNotFoundError, version

from {{import_name}}.mask import CoordinateMask
from {{import_name}}.prior import IsotropicGaussian

try:
    __version__ = version("{{name}}")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["CoordinateMask", "IsotropicGaussian"]
