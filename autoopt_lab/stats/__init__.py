"""Per-sample gradient statistics: the engines behind the Auto optimizers.

- :func:`track` — the hook engine (fast; Linear, Conv1d, Conv2d, Embedding, LayerNorm,
  GroupNorm, MultiheadAttention and the Transformer layers, LSTM, GRU, tied weights,
  BatchNorm in eval mode or with ``batchnorm="contributions"``, under autocast and
  ``torch.compile``; extend with :func:`register_rule`); wide layers get the scalar "ghost
  norm" form (:mod:`autoopt_lab.stats.ghost`);
- :func:`functional_backward` — the ``torch.func`` engine (any model);
- :mod:`autoopt_lab.stats.loop` — a loop over samples, for tests.
"""

from .functional import functional_backward, per_sample_grads
from .hooks import Tracker, explain_missing, suspended, track
from .record import SampleStats
from .rules import LayerRule, UnsupportedModuleError, register_rule, rule_for, supported_types

__all__ = [
    "LayerRule",
    "SampleStats",
    "Tracker",
    "UnsupportedModuleError",
    "explain_missing",
    "functional_backward",
    "per_sample_grads",
    "register_rule",
    "rule_for",
    "supported_types",
    "suspended",
    "track",
]
