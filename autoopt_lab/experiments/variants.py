"""Which registered optimizer plays which part in the reproduction, asked of the registry.

The paper compares each tuned optimizer (SGD, Adam, AdaGrad: registry family ``"tuned"``)
with its AutoOpt counterpart on the same preconditioner (the spec's ``base``). Nothing here
names an optimizer: a base's *library default* Auto optimizer is its Auto entry without a
variant suffix (``autosgd``; ``autoadam-authors`` is a variant), and the other roles are
found the same way.

>>> tuned_for("sgd"), auto_for("adam")
('sgd', 'autoadam')
>>> counterpart("adagrad"), counterpart("autosgd")
('autoadagrad', 'sgd')
"""

from __future__ import annotations

from autoopt_lab.optim import registry

BASES: tuple[str, ...] = registry.BASES


def tuned_for(base: str) -> str | None:
    """The tuned (grid) optimizer on ``base``, or None."""
    names = registry.names("tuned", base=base)
    return names[0] if names else None


def auto_for(base: str) -> str | None:
    """The library-default Auto optimizer on ``base`` (no variant suffix), or None."""
    names = registry.names("auto", base=base)
    plain = [n for n in names if "-" not in n]
    return (plain or names or [None])[0]


def counterpart(name: str) -> str | None:
    """A tuned optimizer's Auto counterpart, or an Auto optimizer's tuned one."""
    spec = registry.get(name)
    return tuned_for(spec.base) if spec.is_auto else auto_for(spec.base)


def is_grid(name: str) -> bool:
    """True for optimizers tuned over a grid (family ``"tuned"``)."""
    return registry.get(name).family == "tuned"
