"""The AutoOpt optimizers: AutoSGD, AutoAdam, AutoAdaGrad."""

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
