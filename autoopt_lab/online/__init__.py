"""Online learning with river: torch modules trained by any registry optimizer, one sample at a time.

:class:`TorchClassifier` and :class:`TorchRegressor` follow river's protocol (``learn_one``,
``predict_one``, ``predict_proba_one``, ``learn_many``, ``predict_many``,
``predict_proba_many``), so river pipelines, ``evaluate.progressive_val_score`` and river's
synthetic drift streams use them unchanged. Samples are buffered into mini-batches of
``batch_size`` (AutoOpt needs N >= 2 per step); see ``docs/online.md``.

>>> from river import preprocessing
>>> from autoopt_lab.online import TorchClassifier
>>> model = preprocessing.StandardScaler() | TorchClassifier(optimizer="autoadam", seed=0)
>>> model.learn_one({"x": 1.0}, "a")
>>> model.predict_proba_one({"x": 1.0})
{'a': 1.0}
"""

from .buffer import SampleBuffer
from .classifier import TorchClassifier
from .features import FeatureLayout
from .learner import TorchLearner
from .modules import MLP, Linear
from .regressor import TorchRegressor

__all__ = [
    "MLP",
    "FeatureLayout",
    "Linear",
    "SampleBuffer",
    "TorchClassifier",
    "TorchLearner",
    "TorchRegressor",
]
