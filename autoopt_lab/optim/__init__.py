"""The AutoOpt optimizers: AutoSGD, AutoAdam, AutoAdaGrad."""

from .autoadagrad import AutoAdaGrad
from .autoadam import AUTHORS_AUTOADAM, AutoAdam
from .autosgd import AutoSGD
from .base import AutoOptimizer
from .factory import OPTIMIZERS, build_optimizer, hparam_tensors

__all__ = [
    "AUTHORS_AUTOADAM",
    "OPTIMIZERS",
    "AutoAdaGrad",
    "AutoAdam",
    "AutoOptimizer",
    "AutoSGD",
    "build_optimizer",
    "hparam_tensors",
]
