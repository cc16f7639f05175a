"""SoundNet: the config, the geometry of its frames, and the network (:mod:`.network`)."""

from .network import *  # noqa: F403
from .network import max_first  # noqa: F401
