"""autoopt-lab: AutoOpt (Lancewicki & Kopru, 2019) optimizers for PyTorch, and a workbench.

>>> import autoopt_lab
>>> sorted(n for n in autoopt_lab.__all__ if n.startswith("Auto"))
['AutoAdaGrad', 'AutoAdam', 'AutoSGD']
"""

from .optim import AutoAdaGrad, AutoAdam, AutoSGD
from .stats import functional_backward, track

__version__ = "0.1.0"
__all__ = ["AutoAdaGrad", "AutoAdam", "AutoSGD", "functional_backward", "track"]
