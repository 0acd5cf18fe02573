"""The AutoOpt optimizers: AutoSGD, AutoAdam, AutoAdaGrad."""

from .autoadagrad import AutoAdaGrad
from .autoadam import AUTHORS_AUTOADAM, AutoAdam
from .autosgd import AutoSGD
from .base import AutoOptimizer
from .factory import OPTIMIZERS, build_optimizer, hparam_tensors
from .registry import BoundOptimizer, OptimizerSpec, build, get, names, register

__all__ = [
    "AUTHORS_AUTOADAM",
    "OPTIMIZERS",
    "AutoAdaGrad",
    "AutoAdam",
    "AutoOptimizer",
    "AutoSGD",
    "BoundOptimizer",
    "OptimizerSpec",
    "build",
    "build_optimizer",
    "get",
    "hparam_tensors",
    "names",
    "register",
]
