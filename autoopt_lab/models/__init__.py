"""The paper's two classifiers (Section 5), built by name.

>>> from autoopt_lab.models import build_model, model_name_for
>>> model = build_model(model_name_for("cifar10"))
>>> sum(p.numel() for p in model.parameters())
62006
"""

from .checks import check_log_probabilities
from .cifar_lenet import CifarLeNet
from .mnist_cnn import MnistCNN
from .registry import MODELS, build_model, model_name_for

__all__ = [
    "MODELS",
    "CifarLeNet",
    "MnistCNN",
    "build_model",
    "check_log_probabilities",
    "model_name_for",
]
