"""The exceptions spdl.io raises, and the checks that raise them for every loader.

Every failure is a :class:`SpdlIOError` and also an instance of the builtin
exception that fits it, so ``except OSError`` or ``except ValueError`` keep
working for callers who do not know this library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "SpdlIOError",
    "SourceError",
    "UnsupportedFormatError",
    "DecodeError",
    "FilterError",
    "ImageTooLargeError",
    "AllocationError",
    "ConfigError",
    "BatchShapeError",
    "UnbatchableFormatError",
    "BatchLoadError",
    "CUDAError",
    "CUDAUnavailableError",
]


class SpdlIOError(Exception):
    """Base class of every error raised by spdl.io.

    Attributes:
        source: The input that failed: a path, or ``"bytes #i"`` for the
            i-th bytes item of a batch (``"bytes"`` outside a batch).
        stage: The pipeline stage: ``"demux"``, ``"decode"``, ``"filter"``,
            ``"convert"``, ``"load"`` or ``"cuda"``.
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


class BatchShapeError(SpdlIOError, ValueError):
    """The images differ in size or pixel format, so they cannot be stacked into one batch."""


class UnbatchableFormatError(SpdlIOError, ValueError):
    """The images' pixel format has no batch layout (ask for one of the batchable formats)."""


#: How many failures a BatchLoadError's message lists; the rest are counted.
MAX_LISTED_FAILURES = 10
#: Each listed failure's message is cut to this many characters.
MAX_FAILURE_CHARS = 500


def _clip(text: str, limit: int = MAX_FAILURE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BatchLoadError(SpdlIOError, ValueError):
    """One or more images of a strict batch failed.

    The message lists the first few failures (by input index) and counts the
    rest, so it stays short for any batch size.

    Attributes:
        errors: ``{input index: exception}`` for every input that failed.
        total: The number of inputs of the batch.
    """

    def __init__(self, errors: Mapping[int, SpdlIOError], total: int):
        errors = dict(sorted(errors.items()))
        lines = [f"{len(errors)} of {total} images failed to load:"]
        shown = list(errors.items())[:MAX_LISTED_FAILURES]
        lines += [f"  [{i}] {_clip(str(e))}" for i, e in shown]
        if len(errors) > len(shown):
            lines.append(f"  ... and {len(errors) - len(shown)} more (all in .errors)")
        super().__init__("\n".join(lines), stage="load")
        self.errors = errors
        self.total = total


def raise_for_failures(errors: Mapping[int, SpdlIOError], total: int, *, strict: bool = True) -> None:
    """Finish a batch: the rule every loader applies to its failed inputs.

    A ConfigError is raised as it is whatever ``strict`` says (it is the
    caller's mistake, not the data's: every input would fail the same way).
    Otherwise, if ``strict`` and anything failed, a BatchLoadError listing the
    failures is raised from the first one. Nothing is raised for an empty
    ``errors``.
    """
    if not errors:
        return
    first = min(errors)
    for i in sorted(errors):
        if isinstance(errors[i], ConfigError):
            raise errors[i]
    if strict:
        raise BatchLoadError(errors, total) from errors[first]


class CUDAError(SpdlIOError, RuntimeError):
    """A call into the CUDA runtime, nvJPEG or NPP failed.

    Attributes:
        op: The call that failed, for example ``"cudaMemcpyAsync"``.
        code: The status it returned (a ``cudaError_t``, ``nvjpegStatus_t`` or
            ``NppStatus``), or None.
    """

    def __init__(self, message: str, *, op: str | None = None, code: int | None = None) -> None:
        super().__init__(message, stage="cuda")
        self.op = op
        self.code = code


class CUDAUnavailableError(CUDAError):
    """CUDA cannot be used here: a library cannot be loaded, or there is no CUDA device.

    Attributes:
        library: The library that could not be loaded (for example
            ``"libcudart.so.13"``), or None when the libraries loaded but
            there is no usable device (the message starts with "no CUDA device").
        tried: The paths that were tried, in order.
        missing: The functions a library that did load lacks, if that is why.
    """

    def __init__(self, message: str, *, library: str | None = None, tried: Iterable[str] = (),
                 op: str | None = None, code: int | None = None, missing: Iterable[str] = ()) -> None:
        super().__init__(message, op=op, code=code)
        self.library = library
        self.tried = tuple(tried)
        self.missing = tuple(missing)


def check_bool(name: str, value: object) -> bool:
    """``value`` as a bool, or TypeError: a flag must be True or False, not a truthy object.

    ``numpy.bool_`` is accepted too (it is what numpy comparisons return).
    """
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy":
        import numpy

        if isinstance(value, numpy.bool_):
            return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
