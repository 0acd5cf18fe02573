"""The AutoOpt optimizers: AutoSGD, AutoAdam, AutoAdaGrad."""

from .autoadagrad import AutoAdaGrad
from .autoadam import AUTHORS_AUTOADAM, AutoAdam
from .autosgd import AutoSGD
from .base import AutoOptimizer
from .registry import BoundOptimizer, OptimizerSpec, build, get, names, register

__all__ = [
    "AUTHORS_AUTOADAM",
    "AutoAdaGrad",
    "AutoAdam",
    "AutoOptimizer",
    "AutoSGD",
    "BoundOptimizer",
    "OptimizerSpec",
    "build",
    "get",
    "names",
    "register",
]
