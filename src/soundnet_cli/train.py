"""Deprecated (0.2.0): moved to :mod:`soundnet_cli.training.supervised`; import from there."""
import sys as _sys
import warnings as _w

from .training import supervised as _new

_w.warn("soundnet_cli.train moved to soundnet_cli.training.supervised",
        DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _new  # the same module object: every name, private ones included
