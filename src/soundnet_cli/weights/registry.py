"""Finding networks: the embedded default, names in the local cache, paths, and the registry of
networks that can be downloaded.

``--weights`` accepts a checkpoint path, or the name of a network in the cache directory
(``$SOUNDNET_HOME``, else ``~/.cache/soundnet``) such as ``soundnet8`` after ``soundnet weights
download soundnet8`` or ``soundnet weights import``; no value means the embedded default that
ships inside the package.

:data:`KNOWN_NETWORKS` lists the authors' original networks: where the release archive and the
category files live, and which archive member is which network. :func:`download_network` fetches
them (see :mod:`.download`) and imports them (see :mod:`.convert`) into
``<cache>/<name>.safetensors``; the downloads stay in ``<cache>/downloads``.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DownloadError, WeightsError
from ..files.jsonutil import loads as strict_json
from .download import ProgressFn, RemoteFile

if TYPE_CHECKING:
    import torch

    from ..model import SoundNet

#: File name of the embedded default network (``weights/`` in the repository, ``soundnet_cli/assets`` installed).
DEFAULT_WEIGHTS_FILE = "soundnet8.safetensors"
CHECKPOINT_SUFFIX = ".safetensors"
DOWNLOADS_SUBDIR = "downloads"

#: The authors' model archive, as linked from the original repository's README (no published
#: checksum: its SHA-256 is recorded on first download and checked afterwards).
ORIGINAL_ARCHIVE = RemoteFile("http://data.csail.mit.edu/soundnet/soundnet_models_public.zip")
#: Category names of the two heads, from the original repository (one name per line).
_CATEGORIES = "https://raw.githubusercontent.com/cvondrick/soundnet/master/categories"
OBJECT_CATEGORIES = RemoteFile(f"{_CATEGORIES}/categories_imagenet.txt")
SCENE_CATEGORIES = RemoteFile(f"{_CATEGORIES}/categories_places2.txt")
_CITATION = ("Aytar, Vondrick, Torralba: SoundNet: Learning Sound Representations from Unlabeled "
             "Video, NIPS 2016; weights from https://github.com/cvondrick/soundnet (MIT licence)")


@dataclass(frozen=True)
class KnownNetwork:
    """A network that ``soundnet weights download`` can fetch and import."""

    name: str
    arch: str
    description: str
    archive: RemoteFile
    member: str
    labels: tuple[tuple[str, RemoteFile], ...] = field(
        default=(("objects", OBJECT_CATEGORIES), ("scenes", SCENE_CATEGORIES)))
    citation: str = _CITATION

    @property
    def files(self) -> tuple[tuple[str, RemoteFile], ...]:
        """Everything to fetch: ``("archive", ...)`` and one entry per head's category file."""
        return (("archive", self.archive),) + self.labels


KNOWN_NETWORKS: dict[str, KnownNetwork] = {
    n.name: n for n in (
        KnownNetwork("soundnet8", "soundnet8",
                     "the authors' SoundNet-8 from their archive (the embedded default is "
                     "the same network, with an esc50 head)",
                     ORIGINAL_ARCHIVE, "soundnet8_final.t7"),
        KnownNetwork("soundnet5", "soundnet5",
                     "the authors' SoundNet-5, trained on 2 M videos",
                     ORIGINAL_ARCHIVE, "soundnet5_final.t7"),
    )
}


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """The user cache for downloaded/imported networks: ``override``, ``$SOUNDNET_HOME`` or
    ``$XDG_CACHE_HOME/soundnet`` (``~/.cache/soundnet``)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("SOUNDNET_HOME"):
        return Path(os.environ["SOUNDNET_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "soundnet"


#: What a network name in the cache may be: a plain file stem (letters, digits, ``._-``, not
#: starting with a dot), so that ``--name`` can never point outside the cache directory.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def check_network_name(name: str) -> str:
    """Return ``name`` if it is a plain network name, else raise :class:`WeightsError`."""
    if not _NAME.fullmatch(name) or name in ("default",):
        raise WeightsError(f"network name {name!r} is not a plain name: use letters, digits, "
                           "'.', '_' and '-' (no '/', not starting with '.'), e.g. soundnet8-ft")
    return name


def cached_checkpoint(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache>/<name>.safetensors`` for a plain ``name`` (see :func:`check_network_name`)."""
    return weights_dir(cache_dir) / f"{check_network_name(name)}{CHECKPOINT_SUFFIX}"


def embedded_weights_dir() -> Path:
    """The embedded network and its model card: ``soundnet_cli/assets`` inside the installed
    package, or ``weights/`` at the repository root when running from a source checkout
    (editable installs do not copy it)."""
    from importlib import resources

    try:
        packaged = Path(str(resources.files("soundnet_cli") / "assets"))
        if packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - unusual importers
        pass
    return Path(__file__).resolve().parents[3] / "weights"


def default_weights_path() -> Path:
    """Path of the embedded default network (may not exist in a bare source checkout)."""
    return embedded_weights_dir() / DEFAULT_WEIGHTS_FILE


def resolve_weights(spec: str | os.PathLike | None = None,
                    cache_dir: str | os.PathLike | None = None, *,
                    option: str = "--weights") -> Path:
    """Turn a ``--weights`` value into a checkpoint path.

    ``None`` or ``"default"``: the embedded network; an existing path: itself; otherwise a name
    looked up as ``<cache>/<name>.safetensors``. Raises :class:`WeightsError` saying what to do,
    naming the option the value came from (``option``: ``--init`` for train and distill; a
    function name such as ``load_model`` for the library).
    """
    if spec is None or str(spec) == "default":
        path = default_weights_path()
        if not path.is_file():
            raise WeightsError(
                "no embedded default network in this installation "
                f"(expected {path}); "
                + (f"pass {option} PATH or {option} NAME of an imported network"
                   if option.startswith("-") else
                   f"give {option}() a checkpoint path or the name of an imported network")
            )
        return path
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise WeightsError(f"{_named(option, spec)}: is a directory, not a checkpoint file")
    name = str(spec)
    if not _NAME.fullmatch(name):
        raise WeightsError(f"{_named(option, spec)}: no such file (and not a network name)")
    cached = weights_dir(cache_dir) / f"{name}{CHECKPOINT_SUFFIX}"
    if cached.is_file():
        return cached
    if name in KNOWN_NETWORKS:
        raise WeightsError(
            f"{_named(option, name)}: not downloaded yet; run `soundnet weights download {name}` "
            f"(it will be stored as {cached})")
    raise WeightsError(
        f"{_named(option, spec)}: no such file, and no network named {name!r} in {cached.parent} "
        "(see `soundnet weights list`)"
    )


def _named(option: str, spec: object) -> str:
    """How a message names the value: ``--weights x`` for an option, ``load_model('x')`` for
    a library function (``option`` without leading dashes)."""
    return f"{option} {spec}" if option.startswith("-") else f"{option}({str(spec)!r})"


def load_model(
    spec: str | os.PathLike | None = None,
    device: "str | torch.device" = "cpu",
    *,
    cache_dir: str | os.PathLike | None = None,
    option: str = "load_model",
) -> "SoundNet":
    """Load a network for inference: resolve ``spec`` (see :func:`resolve_weights`), build it in
    eval mode and move it to ``device`` (a :class:`torch.device` or a ``--device`` string).
    Errors name the value as ``option`` does (``load_model('x')``; the CLI passes
    ``--weights``)."""
    import torch

    from ..device import resolve_device
    from .checkpoint import load_model_file

    model = load_model_file(resolve_weights(spec, cache_dir, option=option))
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(dev)


# ---------------------------------------------------------------------------------------------
# Listing


@dataclass
class NetworkEntry:
    """One line of ``soundnet weights list``.

    ``kind`` is ``"embedded"`` (ships in the package), ``"downloadable"`` (in
    :data:`KNOWN_NETWORKS`) or ``"imported"`` (another checkpoint in the cache); ``path`` is
    where the checkpoint is or would be, ``available`` whether it is there.
    """

    name: str
    kind: str
    path: Path
    available: bool
    arch: str | None = None
    heads: dict[str, int] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": str(self.path),
                "available": self.available, "arch": self.arch, "heads": dict(self.heads),
                "description": self.description}


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's metadata (``config`` and ``provenance`` decoded) without loading tensors
    or torch; ``{}`` for a file that is not a soundnet-cli checkpoint."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 8 << 20:  # checkpoint.MAX_HEADER_BYTES (that module imports torch)
                return {}
            meta = strict_json(f.read(size)).get("__metadata__") or {}
        out: dict[str, Any] = dict(meta)
        out["config"] = strict_json(meta["config"], constants=True)
        out["provenance"] = strict_json(meta.get("provenance", "{}"))
        return out
    except (OSError, struct.error, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _entry(name: str, kind: str, path: Path, description: str = "",
           arch: str | None = None) -> NetworkEntry:
    header = read_header(path) if path.is_file() else {}
    config = header.get("config") or {}
    heads = {str(h.get("name")): len(h.get("labels", []))
             for h in [*config.get("heads", []), *config.get("pooled_heads", [])]
             if isinstance(h, dict)}
    return NetworkEntry(name, kind, path, path.is_file(), config.get("arch", arch), heads,
                        description)


def list_networks(cache_dir: str | os.PathLike | None = None) -> list[NetworkEntry]:
    """The embedded default, every known downloadable network, and other cached checkpoints."""
    cache = weights_dir(cache_dir)
    entries = [_entry("default", "embedded", default_weights_path(),
                      "used when --weights is not given")]
    for net in KNOWN_NETWORKS.values():
        entries.append(_entry(net.name, "downloadable", cache / f"{net.name}{CHECKPOINT_SUFFIX}",
                              net.description, net.arch))
    if cache.is_dir():
        for path in sorted(cache.glob(f"*{CHECKPOINT_SUFFIX}")):
            if path.stem not in KNOWN_NETWORKS:
                prov = read_header(path).get("provenance", {})
                what = prov.get("source_file") or prov.get("kind") or ""
                entries.append(_entry(path.stem, "imported", path,
                                      f"imported from {what}" if what else ""))
    return entries


# ---------------------------------------------------------------------------------------------
# Downloading


def downloads_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where downloaded archives and category files are kept: ``<cache>/downloads``."""
    return weights_dir(cache_dir) / DOWNLOADS_SUBDIR


def known_network(name: str) -> KnownNetwork:
    try:
        return KNOWN_NETWORKS[name]
    except KeyError:
        raise WeightsError(f"no downloadable network named {name!r}; known: "
                           f"{', '.join(KNOWN_NETWORKS)}") from None


def manual_download_help(name: str) -> str:
    """How to get ``name`` without ``soundnet weights download`` (offline machines, proxies)."""
    net = known_network(name)
    urls = "\n".join(f"  {remote.url}" for _, remote in net.files)
    labels = " ".join(f"--labels {head}={remote.name}" for head, remote in net.labels)
    return (f"To install {name} by hand, download these files on a machine with internet:\n"
            f"{urls}\nthen, in the folder holding them, run:\n"
            f"  soundnet weights import {net.archive.name} --arch {net.arch} {labels} "
            f"--name {name}\n(or serve the three files from a local web server and run "
            f"`soundnet weights download {name} --mirror URL`)")


@dataclass
class DownloadedNetwork:
    """What :func:`download_network` did: the checkpoint, whether it was (re)built now, the
    downloaded files as ``{role: (path, sha256)}``, and import warnings."""

    name: str
    path: Path
    created: bool
    files: dict[str, tuple[Path, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def download_network(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    force: bool = False,
    reset_hash: bool = False,
    progress: ProgressFn | None = None,
) -> DownloadedNetwork:
    """Fetch a known network's original files and import them as ``<cache>/<name>.safetensors``.

    Parameters
    ----------
    mirror
        Base URL serving the same files by name (``<mirror>/soundnet_models_public.zip`` ...).
    force
        Rebuild the checkpoint even if it exists (downloads are reused when their checksum
        still matches).
    reset_hash
        Forget recorded checksums and local copies first (accept files that changed upstream).
    progress
        Called as ``progress(file name, bytes done, total or None)`` while transferring.

    Raises
    ------
    DownloadError
        With instructions for downloading by hand and importing.
    """
    from .convert import import_network
    from .download import fetch

    net = known_network(name)
    target = weights_dir(cache_dir) / f"{name}{CHECKPOINT_SUFFIX}"
    if target.is_file() and not force:
        return DownloadedNetwork(name, target, created=False)
    where = downloads_dir(cache_dir)
    files: dict[str, tuple[Path, str]] = {}
    try:
        for role, remote in net.files:
            files[role] = fetch(remote, where, url=remote.at_mirror(mirror), progress=progress,
                                reset_hash=reset_hash)
    except DownloadError as e:
        raise DownloadError(f"{e}\n{manual_download_help(name)}") from e
    provenance = {
        "network": name,
        "citation": net.citation,
        "downloaded": {role: {"url": remote.at_mirror(mirror), "sha256": files[role][1]}
                       for role, remote in net.files},
    }
    try:
        result = import_network(files["archive"][0], fmt="zip", arch=net.arch, member=net.member,
                                labels={head: files[head][0] for head, _ in net.labels},
                                provenance=provenance)
    except WeightsError as e:
        raise WeightsError(f"{e}\nThe downloaded files in {where} could not be imported; to "
                           f"fetch them again, rerun with --reset-hash") from e
    result.save(target)
    return DownloadedNetwork(name, target, True, files, result.warnings)
