"""Exception hierarchy shared by the pipeline, engines, trainer and plugin.

It sits in :mod:`engines`, the bottom layer, so that every package imports it without
importing :mod:`pipeline`; :mod:`pipeline.errors` gives the same classes under that name.
"""


class LungSegError(Exception):
    """Base class of every error lungseg raises on purpose."""


class SeriesRejected(LungSegError):
    """A series is not suitable for lesion segmentation (the message says why)."""


class EngineError(LungSegError):
    """An inference engine could not be loaded or failed to run."""


class ConfigError(LungSegError):
    """A configuration value is missing or invalid (the message names the key)."""
