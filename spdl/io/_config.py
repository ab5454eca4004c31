"""Configuration objects of the pipeline stages."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["DemuxConfig", "DecodeConfig", "CUDAConfig"]

#: Images with more pixels than this are refused before decoding (see DecodeConfig).
DEFAULT_MAX_PIXELS = 50_000_000
#: Files larger than this are refused before reading (see DemuxConfig).
DEFAULT_MAX_FILE_SIZE = 256 * 1024 * 1024


_C = TypeVar("_C")


def config_or_default(value: object, cls: type[_C], name: str) -> _C:
    """value, or cls() when it is None; TypeError naming the argument for anything else."""
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a {cls.__name__} or None, not {type(value).__name__}")
    return value


def _check_options(name: str, options: Mapping[str, object] | None) -> dict[str, str] | None:
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise TypeError(f"{name} must be a mapping of str to str, not {type(options).__name__}")
    out = {}
    for k, v in options.items():
        if not isinstance(k, str):
            raise TypeError(f"{name}: option names must be str, got {k!r}")
        out[k] = v if isinstance(v, str) else str(v)
    return out


def as_int(value: object) -> int | None:
    """value as a builtin int if it is an integer (int subclasses, numpy.integer), else None.

    bool is not an integer here, nor is anything that merely converts (float, str).
    """
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _positive(name: str, value: object) -> int:
    v = as_int(value)
    if v is None or v <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return v


def _non_negative(name: str, value: object, what: str = "int") -> int:
    v = as_int(value)
    if v is None or v < 0:
        raise ValueError(f"{name} must be a non-negative {what}, got {value!r}")
    return v


@dataclasses.dataclass(frozen=True)
class DemuxConfig:
    """How a source is read and split into packets.

    Args:
        format: Name of an FFmpeg demuxer to use instead of detecting the format
            (for example ``"jpeg_pipe"``). Must be one of the image demuxers.
        format_options: Options passed to the demuxer. Options the demuxer does
            not consume raise an error that names them.
        buffer_size: Size of the I/O buffer used when a demuxer reads the data.
        max_file_size: Path sources larger than this many bytes are refused
            before they are read.
    """

    format: str | None = None
    format_options: Mapping[str, str] | None = None
    buffer_size: int = 65536
    max_file_size: int = DEFAULT_MAX_FILE_SIZE

    def __post_init__(self) -> None:
        if self.format is not None and not isinstance(self.format, str):
            raise TypeError(f"format must be a str or None, not {type(self.format).__name__}")
        object.__setattr__(self, "format_options", _check_options("format_options", self.format_options))
        object.__setattr__(self, "buffer_size", _positive("buffer_size", self.buffer_size))
        object.__setattr__(self, "max_file_size", _positive("max_file_size", self.max_file_size))


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """How packets are decoded.

    Args:
        decoder: Name of an FFmpeg decoder to use instead of the default one for
            the codec (for example ``"mjpeg"``).
        decoder_options: Options passed to the decoder (for example
            ``{"lowres": "1"}``). Options the decoder does not consume raise an
            error that names them.
        max_pixels: Images whose header claims more pixels (width x height)
            are refused before any frame memory is allocated.
        apply_orientation: Turn each image as its EXIF orientation says (JPEG
            APP1, WebP EXIF, PNG eXIf, TIFF Orientation), as viewers show it: sizes, padding
            and crop boxes are then in the turned image's pixels. False keeps
            the pixels as stored. Missing or malformed EXIF data counts as
            orientation 1 (as stored).
    """

    decoder: str | None = None
    decoder_options: Mapping[str, str] | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    apply_orientation: bool = True

    def __post_init__(self) -> None:
        if self.decoder is not None and not isinstance(self.decoder, str):
            raise TypeError(f"decoder must be a str or None, not {type(self.decoder).__name__}")
        object.__setattr__(self, "decoder_options", _check_options("decoder_options", self.decoder_options))
        object.__setattr__(self, "max_pixels", _positive("max_pixels", self.max_pixels))
        if not isinstance(self.apply_orientation, bool):
            raise TypeError("apply_orientation must be a bool, not "
                            f"{type(self.apply_orientation).__name__}")


Allocator = tuple[Callable[[int, int, int], int], Callable[[int], None]]


@dataclasses.dataclass(frozen=True)
class CUDAConfig:
    """Where and how a batch is placed on a GPU.

    Args:
        device_index: CUDA device ordinal.
        stream: A ``cudaStream_t`` as an int; 0 is the legacy default stream.
        allocator: ``(alloc(size, device, stream) -> ptr, free(ptr))``, for
            example PyTorch's ``torch.cuda.caching_allocator_alloc`` and
            ``caching_allocator_delete``. None uses ``cudaMalloc``/``cudaFree``.
    """

    device_index: int
    stream: int = 0
    allocator: Allocator | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "device_index", _non_negative("device_index", self.device_index))
        object.__setattr__(self, "stream", _non_negative("stream", self.stream, "int (a cudaStream_t)"))
        if self.stream == 2:
            # cudaStreamPerThread names a different stream in every thread: the work would
            # run on an executor thread's stream, unordered with the consumer's.
            raise ValueError("stream=2 (the per-thread default stream) is not supported: pass a "
                             "stream created for the purpose, or 0 for the legacy default stream")
        if self.allocator is not None:
            if not (isinstance(self.allocator, tuple) and len(self.allocator) == 2
                    and all(callable(f) for f in self.allocator)):
                raise TypeError("allocator must be a pair of callables (alloc(size, device, stream), free(ptr))")
