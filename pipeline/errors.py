"""The lungseg exception hierarchy (defined in :mod:`engines.errors`, the bottom layer)."""

from engines.errors import ConfigError, EngineError, LungSegError, SeriesRejected

__all__ = ["ConfigError", "EngineError", "LungSegError", "SeriesRejected"]
