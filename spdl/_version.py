"""The version of spdl (distribution: pixelbatch): this line is its one source."""

__version__ = "0.1.0"
