"""One optimizer's controls: a menu of every registered optimizer and that optimizer's own,
labelled options, built from its registry spec.

Each :class:`OptimizerPanel` belongs to one optimizer of the run (the main one, the one to
compare with), so an option is never shown under one optimizer while it feeds another.
Options are text fields typed by the spec (an empty field means the spec's default, shown
as a placeholder); booleans are check boxes and options with fixed choices are menus. Required
options (``lr`` of the tuned optimizers) and ``lr``/``momentum``/``betas`` are shown at once,
the others under "more options".

>>> panel = OptimizerPanel("optimizer", value=("sgd", {"lr": 0.05}))
>>> panel.fields["lr"].value, panel.fields["momentum"].placeholder
('0.05', 'default: 0')
>>> panel.read()
('sgd', {'lr': 0.05})
>>> panel.menu.value = "autosgd"; panel.read()
('autosgd', {})
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from autoopt_lab.optim import registry
from autoopt_lab.workbench.choices import optimizer_menu

#: Options shown without opening "more options" (besides the required ones).
MAIN_OPTIONS = ("lr", "momentum", "betas")
NONE = "none"
_STYLE = {"description_width": "110px"}


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class OptimizerPanel:
    """A titled box: the optimizer menu, a one-line note, and the chosen optimizer's options.

    ``allow_none`` adds a "none" entry (for "compare with"). :meth:`read` gives
    ``(name, options)`` (or None) with the options the user set, typed; a bad value is a
    ``ValueError`` naming the optimizer and option.
    """

    def __init__(
        self,
        title: str,
        *,
        value: tuple[str, dict[str, Any]] | None = ("autosgd", {}),
        allow_none: bool = False,
        width: str = "330px",
    ) -> None:
        self.title = title
        self.allow_none = allow_none
        self.width = width
        self.fields: dict[str, widgets.Widget] = {}
        self._kept: dict[str, dict[str, Any]] = {}  # typed-in values per optimizer
        self._disabled = False
        self.refresh_menu()
        self.menu = widgets.Dropdown(
            options=self._menu,
            value=NONE if allow_none else self._menu[0][1],
            description=title,
            style=_STYLE,
            layout=widgets.Layout(width=width),
        )
        self.note = widgets.HTML(layout=widgets.Layout(width=width))
        self.main = widgets.VBox()
        self.more = widgets.Accordion(children=[widgets.VBox()], titles=("more options",))
        self.more.selected_index = None
        self.widget = widgets.VBox(
            [self.menu, self.note, self.main, self.more],
            layout=widgets.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"),
        )
        self.menu.observe(lambda ch: self._rebuild(ch["old"]), names="value")
        if value is not None:
            self.set(*value)
        else:
            self._rebuild(None)

    def refresh_menu(self) -> None:
        """Re-read the registry (an optimizer registered since the panel was made appears)."""
        menu = optimizer_menu()
        self._menu = ([(NONE, NONE)] if self.allow_none else []) + menu
        if hasattr(self, "menu"):
            current = self.menu.value
            self.menu.options = self._menu
            if current in [v for _, v in self._menu]:
                self.menu.value = current

    # ------------------------------------------------------------------ state
    @property
    def name(self) -> str | None:
        return None if self.menu.value == NONE else self.menu.value

    def set(self, name: str | None, options: dict[str, Any] | None = None) -> None:
        """Select ``name`` (a registry name; None for "none") with ``options`` filled in."""
        if name is None:
            if not self.allow_none:
                raise ValueError(f"{self.title}: an optimizer is required")
            self.menu.value = NONE
            return
        spec = registry.get(name)
        self._kept[spec.name] = {k: _show(v) for k, v in (options or {}).items()}
        if self.menu.value == spec.name:
            self._rebuild(spec.name, keep=False)
        else:
            self.menu.value = spec.name

    def read(self) -> tuple[str, dict[str, Any]] | None:
        """``(name, options)``: only the options typed in, converted by the spec."""
        name = self.name
        if name is None:
            return None
        spec = registry.get(name)
        by_name = {o.name: o for o in spec.options}
        out: dict[str, Any] = {}
        for key, w in self.fields.items():
            opt = by_name[key]
            default = spec.preset.get(key, opt.default)
            if isinstance(w, widgets.Checkbox | widgets.Dropdown):
                value = opt.coerce(w.value, f"{spec.name} ({self.title})")
                if value != default:
                    out[key] = value
                continue
            text = str(w.value).strip()
            if text:
                out[key] = opt.coerce(text, f"{spec.name} ({self.title})")
        return name, out

    @property
    def disabled(self) -> bool:
        return self._disabled

    @disabled.setter
    def disabled(self, value: bool) -> None:
        self._disabled = bool(value)
        self.menu.disabled = self._disabled
        for w in self.fields.values():
            w.disabled = self._disabled

    # ------------------------------------------------------------------ building
    def _values(self) -> dict[str, Any]:
        return {k: w.value for k, w in self.fields.items()}

    def _rebuild(self, old: str | None, *, keep: bool = True) -> None:
        if keep and old not in (None, NONE) and self.fields:
            self._kept[old] = self._values()
        self.fields = {}
        name = self.name
        if name is None:
            self.note.value = "<small>no second optimizer</small>"
            self.main.children, self.more.children = (), (widgets.VBox(),)
            self.more.layout.display = "none"
            return
        spec = registry.get(name)
        kept = self._kept.get(name, {})
        main, more = [], []
        for opt in spec.options:
            w = self._field(spec, opt, kept.get(opt.name))
            self.fields[opt.name] = w
            (main if opt.name in spec.required or opt.name in MAIN_OPTIONS else more).append(w)
        self.main.children = tuple(main)
        self.more.children = (widgets.VBox(more),)
        self.more.set_title(0, f"more {spec.display} options ({len(more)})")
        self.more.layout.display = None if more else "none"
        self.more.selected_index = None
        self.note.value = self._note(spec)
        self.disabled = self._disabled

    def _field(self, spec: registry.OptimizerSpec, opt: registry.Option, kept: Any) -> widgets.Widget:
        required = opt.name in spec.required
        label = f"{opt.name} *" if required else opt.name
        tip = opt.help or f"{spec.display} option {opt.name}"
        layout = widgets.Layout(width=self.width)
        if opt.kind is bool:
            value = bool(opt.default) if kept is None else kept in (True, "True", "true")
            return widgets.Checkbox(
                value=value, description=label, tooltip=tip, indent=True,
                style=_STYLE, layout=layout,
            )
        if opt.choices:
            options = [str(c) for c in opt.choices]
            value = str(spec.preset.get(opt.name, opt.default) if kept in (None, "") else kept)
            return widgets.Dropdown(
                options=options, value=value if value in options else options[0],
                description=label, tooltip=tip, style=_STYLE, layout=layout,
            )
        default = spec.preset.get(opt.name, opt.default)
        placeholder = "required" if required else f"default: {_show(default)}"
        return widgets.Text(
            value="" if kept is None else str(kept), placeholder=placeholder,
            description=label, tooltip=tip, style=_STYLE, layout=layout,
            continuous_update=False,
        )

    def _note(self, spec: registry.OptimizerSpec) -> str:
        bits = [html.escape(spec.description or spec.display)]
        if spec.required:
            bits.append(f"<b>{html.escape(', '.join(spec.required))}</b> required (marked *)")
        if not spec.available:
            bits.append(
                f"<b style='color:#b00'>not installed</b>: pip install {html.escape(spec.package or '')}"
            )
        return f"<small>{'; '.join(bits)}</small>"
