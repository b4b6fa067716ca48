"""Package version, shared by every lungseg component."""

__version__ = "0.1.0"
