"""The layout of a ``soundnet tag --out DIR`` folder: its formats and the names of its files.

Every input gives, at its path relative to the directory it was found in (the same helper as
``extract``: :func:`~soundnet_cli.files.fsutil.mirrored_output`), with its audio suffix replaced:

=============  =========================  ==================================================
format         per input                  combined, in ``DIR`` (merged from the records)
=============  =========================  ==================================================
(always)       ``a/b.tags.json``          ``run.json`` (the run's full settings)
``jsonl``      (the record)               ``tags.jsonl``: one record per line
``csv``        ``a/b.tags.csv``           ``tags.csv``: the long table of every file
``raven``      ``a/b.selections.txt``     ``selections.txt``: one table, ``Begin Path`` column
``audacity``   ``a/b.labels.txt``         (none: a label track belongs to one audio file)
``parquet``    (none)                     ``tags.parquet`` (needs pyarrow)
``png``        ``a/b.tags.png``           (none; needs matplotlib)
``scores``     ``a/b.scores.npz``         (none: every step's score of every label, for
                                          ``soundnet evaluate`` and the review page)
``html``       (none)                     ``review.html`` and ``review/`` (the review page,
                                          :mod:`soundnet_cli.review.page`)
=============  =========================  ==================================================

Writing the folder is :mod:`.outputs`; reading a finished one back is
:mod:`soundnet_cli.review.rundir`. Both take the names from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import SoundNetError
from ..files.fsutil import mirrored_output

#: Formats ``--format`` accepts; ``all`` means every one whose package is installed.
FORMATS = ("jsonl", "csv", "raven", "audacity", "parquet", "png", "scores", "html")
#: The record of one input: the file that marks it done.
RECORD_SUFFIX = ".tags.json"
#: Per-input views, by format.
VIEW_SUFFIXES = {"csv": ".tags.csv", "raven": ".selections.txt", "audacity": ".labels.txt",
                 "png": ".tags.png", "scores": ".scores.npz"}
#: Per-input files made from the result itself, not from its record: missing, they are recomputed.
RESULT_VIEWS = ("png", "scores")
#: Combined tables in ``DIR``, by format.
COMBINED_NAMES = {"jsonl": "tags.jsonl", "csv": "tags.csv", "raven": "selections.txt",
                  "parquet": "tags.parquet"}
#: The run's full settings, in ``DIR``.
RUN_FILE = "run.json"
#: The folder's record of what made its results (:mod:`.outputs`, "One folder, one set of
#: settings").
RECORD_NAME = "tag.json"
#: Formats that need an optional package.
_PACKAGES = {"parquet": "pyarrow", "png": "matplotlib"}


def parse_formats(spec: str) -> tuple[str, ...]:
    """``--format`` value (comma-separated, or ``all``) as a tuple in :data:`FORMATS` order.

    ``all`` leaves out formats whose package is missing; naming such a format explicitly raises
    :class:`SoundNetError` saying what to install.
    """
    import importlib.util

    names = {n.strip().lower() for n in spec.split(",") if n.strip()}
    if not names:
        raise SoundNetError("--format: no format given; choose from " + ", ".join(FORMATS))
    if "all" in names:
        return tuple(f for f in FORMATS
                     if f not in _PACKAGES or importlib.util.find_spec(_PACKAGES[f]) is not None)
    unknown = sorted(names - set(FORMATS))
    if unknown:
        raise SoundNetError(f"--format: unknown {', '.join(unknown)}; choose from "
                            f"{', '.join(FORMATS)} or all")
    for name in names & set(_PACKAGES):
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            extra = "plot" if name == "png" else name
            raise SoundNetError(f"--format {name} needs {_PACKAGES[name]}: "
                                f"pip install 'soundnet-cli[{extra}]'")
    return tuple(f for f in FORMATS if f in names)


def formats_left_out(spec: str) -> dict[str, str]:
    """The formats ``--format all`` (``spec``) leaves out because their package is missing:
    ``{format: what to install}`` (empty when ``spec`` does not say ``all``)."""
    import importlib.util

    if "all" not in {n.strip().lower() for n in spec.split(",")}:
        return {}
    return {f: f"pip install 'soundnet-cli[{'plot' if f == 'png' else f}]'"
            for f, package in _PACKAGES.items() if importlib.util.find_spec(package) is None}


def record_path(source: Path, roots: Sequence[Path], out_dir: Path) -> Path:
    """Where the record of ``source`` goes (see the module docs)."""
    return mirrored_output(source, list(roots), out_dir, RECORD_SUFFIX)


def view_paths(source: Path, roots: Sequence[Path], out_dir: Path,
               formats: Sequence[str]) -> dict[str, Path]:
    """Where the per-input views of ``formats`` of ``source`` go, by format (formats without a
    per-input file are left out)."""
    return {f: mirrored_output(source, list(roots), out_dir, VIEW_SUFFIXES[f])
            for f in formats if f in VIEW_SUFFIXES}
