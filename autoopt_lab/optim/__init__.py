"""The AutoOpt optimizers: AutoSGD, AutoAdam, AutoAdaGrad; and the registry of every optimizer
the project trains with (the built-in ones register when this package is imported, through
:mod:`.catalogue`: the registry itself imports no optimizer)."""

from . import catalogue  # noqa: F401  (registers the built-in optimizers)
from .autoadagrad import AutoAdaGrad
from .autoadam import AUTHORS_AUTOADAM, AutoAdam
from .autosgd import AutoSGD
from .base import AutoOptimizer
from .bound import BoundOptimizer, build
from .registry import OptimizerSpec, get, names, register
from .spec_strings import Choice

__all__ = [
    "AUTHORS_AUTOADAM",
    "AutoAdaGrad",
    "AutoAdam",
    "AutoOptimizer",
    "AutoSGD",
    "BoundOptimizer",
    "Choice",
    "OptimizerSpec",
    "build",
    "get",
    "names",
    "register",
]
