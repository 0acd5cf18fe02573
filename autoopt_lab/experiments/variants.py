"""Which registered optimizer plays which part in the reproduction, asked of the registry.

The paper compares each tuned optimizer (SGD, Adam, AdaGrad: registry family ``"tuned"``)
with its AutoOpt counterpart on the same preconditioner (the spec's ``base``). The
reproduction shows every variant of that counterpart side by side, by *role*:

* ``tuned``: the grid-tuned baseline on the base;
* ``paper``: the paper's method as written: the registry's ``<auto>-paper`` entry, or the
  library default while no such entry exists (then the two columns coincide);
* ``authors``: the authors' published settings, ``<auto>-authors`` where registered;
* ``default``: the library's default Auto optimizer on the base (the entry without a
  variant suffix, e.g. ``autosgd``);
* ``peer``: the tuning-free optimizers of family ``"peer"`` on the base (at their defaults).

Nothing here names an optimizer: adding a registry entry adds it to its role.

>>> tuned_for("sgd"), auto_for("adam")
('sgd', 'autoadam')
>>> [v.role for v in variants_for("adam", peers="first")]
['tuned', 'paper', 'authors', 'default', 'peer']
"""

from __future__ import annotations

from dataclasses import dataclass

from autoopt_lab.optim import registry

BASES: tuple[str, ...] = registry.BASES
#: Roles in the order of the Table 2 columns.
ROLES: tuple[str, ...] = ("tuned", "paper", "authors", "default", "peer")
ROLE_TITLES: dict[str, str] = {
    "tuned": "tuned (best grid setting)",
    "paper": "paper's method as written",
    "authors": "authors' published settings",
    "default": "library default",
    "peer": "best tuning-free peer",
}


@dataclass(frozen=True)
class Variant:
    """One optimizer in one role for one preconditioner family (``base``)."""

    role: str
    base: str
    optimizer: str

    @property
    def display(self) -> str:
        return registry.get(self.optimizer).display


def tuned_for(base: str) -> str | None:
    """The tuned (grid) optimizer on ``base``, or None."""
    names = registry.names("tuned", base=base)
    return names[0] if names else None


def auto_for(base: str) -> str | None:
    """The library-default Auto optimizer on ``base`` (no variant suffix), or None."""
    names = registry.names("auto", base=base)
    plain = [n for n in names if "-" not in n]
    return (plain or names or [None])[0]


def _suffixed(base: str, suffix: str) -> str | None:
    default = auto_for(base)
    name = f"{default}-{suffix}" if default else None
    return name if name in registry.names("auto", base=base) else None


def paper_for(base: str) -> str | None:
    """The paper's method as written on ``base``: ``<default>-paper``, else the default."""
    return _suffixed(base, "paper") or auto_for(base)


def authors_for(base: str) -> str | None:
    """The authors' published settings on ``base`` (``<default>-authors``), or None."""
    return _suffixed(base, "authors")


def peers_for(base: str, peers: str = "all") -> list[str]:
    """The available tuning-free peers on ``base``: ``"all"`` or the ``"first"`` one."""
    names = registry.names("peer", base=base, available=True)
    if peers not in ("all", "first"):
        raise ValueError(f"peers must be 'all' or 'first', got {peers!r}")
    return names[:1] if peers == "first" else names


def variants_for(base: str, peers: str = "all") -> list[Variant]:
    """Every role's optimizer(s) on ``base``, in :data:`ROLES` order (missing roles left out)."""
    out = []
    for role, name in (
        ("tuned", tuned_for(base)),
        ("paper", paper_for(base)),
        ("authors", authors_for(base)),
        ("default", auto_for(base)),
    ):
        if name is not None:
            out.append(Variant(role, base, name))
    out += [Variant("peer", base, name) for name in peers_for(base, peers)]
    return out


def counterpart(name: str) -> str | None:
    """A tuned optimizer's default Auto counterpart, or any other optimizer's tuned one."""
    spec = registry.get(name)
    return auto_for(spec.base) if spec.family == "tuned" else tuned_for(spec.base)


def is_grid(name: str) -> bool:
    """True for optimizers tuned over a grid (family ``"tuned"``)."""
    return registry.get(name).family == "tuned"
