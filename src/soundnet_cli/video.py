"""Deprecated (0.2.0): moved to :mod:`soundnet_cli.distill.video`; import from there."""
import sys as _sys
import warnings as _w

from .distill import video as _new

_w.warn("soundnet_cli.video moved to soundnet_cli.distill.video",
        DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _new  # the same module object: every name, private ones included
