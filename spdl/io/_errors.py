"""The exceptions spdl.io raises.

Every failure is a :class:`SpdlIOError` and also an instance of the builtin
exception that fits it, so ``except OSError`` or ``except ValueError`` keep
working for callers who do not know this library.
"""

from __future__ import annotations

__all__ = [
    "SpdlIOError",
    "SourceError",
    "UnsupportedFormatError",
    "DecodeError",
    "FilterError",
    "ImageTooLargeError",
    "AllocationError",
    "ConfigError",
    "BatchLoadError",
]


class SpdlIOError(Exception):
    """Base class of every error raised by spdl.io.

    Attributes:
        source: The input that failed: a path, or ``"bytes #i"`` for the
            i-th bytes item of a batch (``"bytes"`` outside a batch).
        stage: The pipeline stage: ``"demux"``, ``"decode"``, ``"filter"``,
            ``"convert"`` or ``"load"``.
    """

    def __init__(self, message: str, *, source: str | None = None, stage: str | None = None):
        super().__init__(message)
        self.source = source
        self.stage = stage

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class SourceError(SpdlIOError, OSError):
    """The source could not be read: missing, not a regular file, too large."""


class UnsupportedFormatError(SpdlIOError, ValueError):
    """The bytes are not an image format this build accepts."""


class DecodeError(SpdlIOError, ValueError):
    """The image data is corrupt or decoded to no frame."""


class FilterError(SpdlIOError, ValueError):
    """The filter description is invalid or could not be applied."""


class ImageTooLargeError(SpdlIOError, MemoryError):
    """The image claims more pixels than the configured limit."""


class AllocationError(SpdlIOError, MemoryError):
    """Memory for a frame or a batch could not be allocated."""


class ConfigError(SpdlIOError, ValueError):
    """An option was not consumed, or names a demuxer or decoder that is not allowed."""


class BatchLoadError(SpdlIOError, ValueError):
    """One or more images of a strict batch failed.

    Attributes:
        errors: ``{input index: exception}`` for every input that failed.
    """

    def __init__(self, errors: dict[int, SpdlIOError], total: int):
        lines = [f"{len(errors)} of {total} images failed to load:"]
        lines += [f"  [{i}] {e}" for i, e in sorted(errors.items())]
        super().__init__("\n".join(lines), stage="load")
        self.errors = errors
