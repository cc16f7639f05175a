"""Readable value types in ``--help``.

Typer 0.29 prints a type for every parameter: ``<bool>`` beside flags, which take no value, and
``<list[Path]>`` beside repeatable ones. :func:`tidy_help_types` shows nothing for a flag and the
element type for a list (``<path>``, ``<str>``: the option is repeated, the argument takes
several). Other typer versions, without these methods, are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

_LIST = re.compile(r"<list\[(\w+)\]>")


def _element(label: Any) -> Any:
    return _LIST.sub(lambda m: f"<{m.group(1).lower()}>", label) if isinstance(label, str) else label


def tidy_help_types() -> None:
    """Patch typer's help-type display once (see the module docstring)."""
    try:
        from typer import core
    except ImportError:  # pragma: no cover - typer always ships it
        return
    option, parameter = getattr(core, "TyperOption", None), getattr(core, "_TyperParameter", None)
    if option is None or parameter is None or getattr(option, "_soundnet_tidy", False):
        return
    shown_option = option.display_type_rich
    shown_parameter = parameter.display_type_rich

    def option_type(self: Any, ctx: Any) -> Any:
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None  # a flag takes no value
        return _element(shown_option(self, ctx))

    def parameter_type(self: Any, ctx: Any) -> Any:
        return _element(shown_parameter(self, ctx))

    option.display_type_rich = option_type
    parameter.display_type_rich = parameter_type
    option._soundnet_tidy = True
