"""Load images (paths or bytes) into one batch array, fast.

    buf = await spdl.io.async_load_image_batch(srcs, width=224, height=224)
    arr = spdl.io.to_numpy(buf)   # (N, 224, 224, 3) uint8, no copy

The stages are public too: demux_image -> decode_packets -> convert_frames ->
transfer_buffer, each with an async_ twin. Datasets (folders, tar shards, Parquet)
come in batches from iter_image_batches / aiter_image_batches.
"""

from spdl._conflicts import warn_if_meta_spdl as _warn_if_meta_spdl
from spdl._version import __version__
from spdl.io._buffer import CPUBuffer
from spdl.io._config import CUDAConfig, DecodeConfig, DemuxConfig
from spdl.io._cuda_buffer import CUDABuffer
from spdl.io._cuda_device import cuda_available
from spdl.io._cuda_info import cuda_info
from spdl.io._decode import ImageFrames
from spdl.io._demux import IMAGE_DEMUXERS, ImagePackets
from spdl.io._status import set_ffmpeg_log_level
from spdl.io._errors import (
    AllocationError,
    BatchLoadError,
    BatchShapeError,
    ConfigError,
    CUDAError,
    CUDAUnavailableError,
    DecodeError,
    FilterError,
    ImageTooLargeError,
    SourceError,
    SpdlIOError,
    UnbatchableFormatError,
    UnsupportedFormatError,
)
from spdl.io._filter_desc import get_video_filter_desc
from spdl.io._interop import to_numpy, to_torch
from spdl.io._types import FrameOptions, LoadOptions, Source, Sources
from spdl.io._plan import CenterCrop, RandomResizedCrop
from spdl.io._load import (
    async_convert_frames,
    async_decode_packets,
    async_demux_image,
    async_load_image_batch,
    async_transfer_buffer,
    convert_frames,
    decode_packets,
    demux_image,
    get_num_threads,
    load_image_batch,
    set_num_threads,
    transfer_buffer,
)
from spdl.io._dataset import ImageBatches, aiter_image_batches, iter_image_batches
from spdl.io._nvjpeg_batch import async_load_image_batch_nvjpeg, load_image_batch_nvjpeg

__all__ = [
    "AllocationError",
    "BatchLoadError",
    "BatchShapeError",
    "CPUBuffer",
    "CUDABuffer",
    "CenterCrop",
    "CUDAConfig",
    "CUDAError",
    "CUDAUnavailableError",
    "ConfigError",
    "DecodeConfig",
    "DecodeError",
    "DemuxConfig",
    "FilterError",
    "FrameOptions",
    "ImageBatches",
    "IMAGE_DEMUXERS",
    "ImageFrames",
    "ImagePackets",
    "ImageTooLargeError",
    "LoadOptions",
    "RandomResizedCrop",
    "Source",
    "SourceError",
    "Sources",
    "SpdlIOError",
    "UnbatchableFormatError",
    "UnsupportedFormatError",
    "aiter_image_batches",
    "async_convert_frames",
    "async_decode_packets",
    "async_demux_image",
    "async_load_image_batch",
    "async_load_image_batch_nvjpeg",
    "async_transfer_buffer",
    "convert_frames",
    "cuda_available",
    "cuda_info",
    "decode_packets",
    "demux_image",
    "get_num_threads",
    "get_video_filter_desc",
    "iter_image_batches",
    "load_image_batch",
    "load_image_batch_nvjpeg",
    "set_ffmpeg_log_level",
    "set_num_threads",
    "to_numpy",
    "to_torch",
    "transfer_buffer",
]

_warn_if_meta_spdl()
