"""spdl: fast batched image loading (the distribution is named pixelbatch)."""

from spdl._version import __version__

__all__ = ["__version__"]
