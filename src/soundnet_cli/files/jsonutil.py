"""Reading JSON that soundnet-cli did not necessarily write: strictly, and never crashing.

Every JSON file soundnet-cli reads back (per-input tag records, shard tables and status files,
run records, checkpoint metadata) may have been edited, truncated or crafted. :func:`loads` is
the one parser for them: it accepts only strict JSON (``NaN`` and ``Infinity``, which
``json.dumps`` writes by default but no JSON parser elsewhere accepts, are refused) and turns
input nested too deeply for the parser's recursion into a plain :class:`ValueError`, so a
hostile file is one error naming it, never a ``RecursionError`` traceback.
"""

from __future__ import annotations

import json
from typing import Any


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"not strict JSON: {token} is not a number JSON allows")


def loads(text: str | bytes, *, constants: bool = False) -> Any:
    """Parse strict JSON ``text``; :class:`ValueError` for anything else.

    Refused: malformed JSON, the constants ``NaN``, ``Infinity`` and ``-Infinity`` (unless
    ``constants``: for values a validator checks next and names better, such as a checkpoint's
    config), and nesting deeper than Python's recursion limit allows (about 1,000 levels; a
    ``RecursionError`` otherwise).
    """
    try:
        if constants:
            return json.loads(text)
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
