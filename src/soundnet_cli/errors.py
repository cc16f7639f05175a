"""One exception family for everything a user can cause.

Library code raises these; only the CLI prints them and chooses the exit code. Anything that is not
a :class:`SoundNetError` escaping to the CLI is a bug in soundnet-cli.
"""

from __future__ import annotations


class SoundNetError(Exception):
    """Base class: a problem with the user's input, files, options or environment."""


class UsageError(SoundNetError, ValueError):
    """Options, environment variables or an input list that cannot be used as given (a bad
    ``--shard``, a malformed ``SLURM_ARRAY_TASK_ID``, an unreadable ``--files-from`` list); the
    CLI exits with status 2 as for any other usage error."""


class AudioError(SoundNetError):
    """An audio file is missing, unreadable, corrupt, empty or holds non-finite samples."""


class WeightsError(SoundNetError):
    """A checkpoint is missing, malformed, of an unknown version or does not fit the request."""


class LayerError(SoundNetError, ValueError):
    """A layer name or original module number that the network does not have."""


class DatasetError(SoundNetError):
    """A dataset layout, label file or fold assignment that cannot be used."""


class SvmError(SoundNetError):
    """An SVM model file that cannot be used (malformed, newer format, fit on another network) or
    SVM options that do not fit together."""


class DeviceError(SoundNetError):
    """A requested compute device that is not available."""


class VideoError(SoundNetError):
    """A video file is missing, undecodable, or lacks the audio track or frames teaching needs."""


class TeacherError(SoundNetError):
    """A teacher network that cannot be loaded or used (unknown name, missing package or weights,
    a labels file that does not match its outputs)."""


class TargetsError(SoundNetError):
    """A teacher-targets collection (``soundnet teach`` output) that is missing, malformed or
    inconsistent with the request."""


class DownloadError(SoundNetError):
    """A download failed, was truncated or did not match its recorded checksum."""


class OutputError(SoundNetError):
    """An output file, directory or manifest that cannot be written or read back."""


class MemoryBudgetError(SoundNetError):
    """A result would not fit the memory budget it was asked to stay within (long files)."""


class DecodingError(SoundNetError):
    """The decoding processes cannot run at all (not one file's problem, which is reported with
    that file)."""


class SoundNetWarning(UserWarning):
    """Something worth telling the user that does not stop the work (silence, tiling, ...)."""
