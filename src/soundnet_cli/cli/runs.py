"""Run directories of ``train`` and ``distill``: the options a run was started with.

``RUN_DIR/run.json`` holds every option of the command that started the run (paths made
absolute), written before training starts. ``--resume --run-dir RUN_DIR`` alone then continues the
run with those options; options given together with ``--resume`` must agree with them, except the
ones in :data:`FREE`, which never change what is computed (device, workers, output file, ...).
"""

from __future__ import annotations

import enum
import json
import shlex
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

import typer

from ..files.fsutil import atomic_write_text
from ..files.jsonutil import loads as strict_json

SETTINGS_FILE = "run.json"
#: Options a resumed run may change: where and how it runs, not what it computes.
FREE = frozenset({"resume", "overwrite", "run_dir", "device", "workers", "quiet", "out_path",
                  "half"})


def _flag(ctx: typer.Context, name: str) -> str:
    """The option's own spelling (``--lr``, ``--batch-size``) for messages."""
    for p in ctx.command.params:
        if p.name == name:
            longs = [o for o in p.opts if o.startswith("--")]
            return longs[0] if longs else name.upper()
    return name


def _plain(value: Any) -> Any:
    """A JSON value for an option value (enums by value, paths absolute)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _restore(value: Any, hint: Any) -> Any:
    """The option value of type ``hint`` (``Annotated[Optional[Path], ...]`` ...) from JSON."""
    if value is None:
        return None
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = args[0] if len(args) == 1 else hint
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return [_restore(v, item) for v in value]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if hint is Path:
        return Path(value)
    return value


def settle(ctx: typer.Context, command: Callable[..., Any], params: dict[str, Any],
           ) -> dict[str, Any]:
    """The options to run with: ``params`` as given, or with ``--resume``, the run's stored
    options with the :data:`FREE` ones given now. Raises ``typer.BadParameter`` for a given
    option that differs from the run's."""
    path = Path(params["run_dir"]) / SETTINGS_FILE
    if not params.get("resume") or not path.is_file():
        return params  # a fresh run, or one started before run.json existed (checked later)
    try:
        stored = strict_json(path.read_text(encoding="utf-8"))["options"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise typer.BadParameter(f"{path}: unreadable ({e}); resume with all the original "
                                 "options instead", param_hint="--resume") from None
    given = {n for n in params if _typed(ctx, n)}
    differ = [f"{_flag(ctx, n)} {_show(_plain(params[n]))} (the run has {_show(stored[n])})"
              for n in sorted(given - FREE) if n in stored and _plain(params[n]) != stored[n]]
    if differ:
        raise typer.BadParameter(
            f"{', '.join(differ)}: a resumed run keeps the options it was started with "
            f"({path}); drop them to continue it, or start a new run in another --run-dir "
            "(or with --overwrite)", param_hint="--resume")
    hints = typing.get_type_hints(command, include_extras=True)
    merged = dict(params)
    for name, value in stored.items():
        if name in merged and name not in given and name not in ("resume", "overwrite"):
            merged[name] = _restore(value, hints.get(name))
    return merged


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line (not defaulted). Compared by
    name: click's ``ParameterSource`` lives in click or, from typer 0.29, in typer's own copy."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "(none)" if value is None else str(value)


def save_settings(command: str, params: Mapping[str, Any]) -> Path:
    """Write ``RUN_DIR/run.json`` atomically: every option of this fresh run."""
    run_dir = Path(params["run_dir"])
    options = {n: _plain(v) for n, v in params.items() if n not in ("resume", "overwrite")}
    path = run_dir / SETTINGS_FILE
    atomic_write_text(path, json.dumps({"command": command, "options": options}, indent=1,
                                       sort_keys=True) + "\n")
    return path


def resume_hint(command: str, run_dir: Path, argv: list[str]) -> str:
    """What to type to continue an interrupted run (``argv``: this command's arguments)."""
    from ..training.loop import STATE_FILE

    if not (run_dir / STATE_FILE).is_file():
        return (f"interrupted before the first epoch finished; nothing to resume in {run_dir}. "
                f"Start again with --overwrite:\n  soundnet {command} "
                + " ".join(shlex.quote(a) for a in [*argv, "--overwrite"]))
    if (run_dir / SETTINGS_FILE).is_file():
        line = f"soundnet {command} --resume --run-dir {shlex.quote(str(run_dir))}"
    else:  # an older run: its options are not stored
        line = f"soundnet {command} " + " ".join(shlex.quote(a) for a in [*argv, "--resume"])
    return (f"interrupted; the finished epochs are kept in {run_dir}. Continue exactly where it "
            f"stopped with:\n  {line}")
