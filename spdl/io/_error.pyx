# cython: language_level=3
"""The old name of spdl.io._status, for modules not yet moved over."""

from spdl.io._status import set_ffmpeg_log_level  # noqa: F401
