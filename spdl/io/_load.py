"""The public loading functions: the stages, the batch loaders, and their async twins.

Each stage is a plain function that releases the GIL while it works; each
``async_`` twin runs it on the running loop's executor.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from spdl.io._batch import BatchJob, default_workers
from spdl.io._buffer import CPUBuffer
from spdl.io._config import CUDAConfig, DecodeConfig, DemuxConfig
from spdl.io._convert import convert_frames
from spdl.io._decode import ImageFrames, decode_packets
from spdl.io._demux import ImagePackets, demux_image
from spdl.io._filter_desc import get_video_filter_desc

__all__ = [
    "demux_image",
    "decode_packets",
    "convert_frames",
    "transfer_buffer",
    "load_image_batch",
    "async_demux_image",
    "async_decode_packets",
    "async_convert_frames",
    "async_transfer_buffer",
    "async_load_image_batch",
]


class _Default:
    def __repr__(self):
        return "<default: get_video_filter_desc(scale_width=width, scale_height=height, pix_fmt=pix_fmt)>"


#: The default filter_desc of the loaders: scale into width x height keeping the
#: aspect ratio, pad with black, convert to pix_fmt.
DEFAULT_FILTER = _Default()


def transfer_buffer(buffer: CPUBuffer, *, device_config: CUDAConfig):
    """Copy a CPU batch to a CUDA device; see spdl.io._cuda."""
    from spdl.io._cuda import transfer_buffer as _transfer

    return _transfer(buffer, device_config=device_config)


def _check_device(device_config) -> None:
    if device_config is not None:
        if not isinstance(device_config, CUDAConfig):
            raise TypeError(f"device_config must be a CUDAConfig or None, not {type(device_config).__name__}")
        from spdl.io._cuda import check_device

        check_device(device_config)


def _batch_job(srcs, width, height, pix_fmt, demux_config, decode_config, filter_desc,
               device_config=None):
    if filter_desc is DEFAULT_FILTER:
        filter_desc = get_video_filter_desc(scale_width=width, scale_height=height, pix_fmt=pix_fmt)
    allocator = None
    if device_config is not None:
        # A batch headed for the GPU is decoded straight into page-locked memory.
        from spdl.io._cuda import host_allocator

        allocator = host_allocator(device_config)
    return BatchJob(srcs, demux_config, decode_config, filter_desc, allocator)


def load_image_batch(
    srcs: Sequence[str | bytes],
    *,
    width: int | None,
    height: int | None,
    pix_fmt: str | None = "rgb24",
    demux_config: DemuxConfig | None = None,
    decode_config: DecodeConfig | None = None,
    filter_desc: str | None = DEFAULT_FILTER,
    device_config: CUDAConfig | None = None,
    strict: bool = True,
):
    """Load images into one batch, in the calling thread.

    Same arguments and result as :func:`async_load_image_batch`; the images
    are processed one after another in this thread with the GIL released
    (use the async form to spread them over threads).
    """
    _check_device(device_config)
    job = _batch_job(srcs, width, height, pix_fmt, demux_config, decode_config, filter_desc,
                     device_config)
    job.run_worker()
    buf = job.finish(strict)
    if device_config is not None:
        return transfer_buffer(buf, device_config=device_config)
    return buf


async def async_load_image_batch(
    srcs: Sequence[str | bytes],
    *,
    width: int | None,
    height: int | None,
    pix_fmt: str | None = "rgb24",
    demux_config: DemuxConfig | None = None,
    decode_config: DecodeConfig | None = None,
    filter_desc: str | None = DEFAULT_FILTER,
    device_config: CUDAConfig | None = None,
    strict: bool = True,
):
    """Load images (paths or bytes) into one batch.

    The images are demuxed, decoded and resized concurrently on the running
    loop's executor; with the default filter each is written straight into
    its row of the batch.

    Args:
        srcs: File paths (str, os.PathLike) or bytes-like objects.
        width, height: The size of every image in the batch. With the default
            filter the image is scaled to fit, keeping its aspect ratio, and
            padded with black. None for both keeps the decoded size (the
            images must then share one size).
        pix_fmt: ``rgb24`` (default), ``bgr24``, ``rgba``, ``gray``, ``gray16``,
            ``yuv444p``, or None for the decoded format.
        demux_config: A DemuxConfig, or None.
        decode_config: A DecodeConfig, or None.
        filter_desc: An FFmpeg filter description applied to every image
            instead of the default, or None for no filter.
        device_config: A CUDAConfig to return the batch on a GPU, or None.
        strict: If True, any failure raises BatchLoadError naming every failed
            input. If False, the batch holds the images that loaded, in input
            order; ``buf.indices`` gives each row's input index and
            ``buf.errors`` maps each failed input's index to its exception.

    Returns:
        CPUBuffer of shape (N, H, W, C) for packed formats or (N, C, H, W) for
        yuv444p; a CUDABuffer with ``device_config``.
    """
    _check_device(device_config)
    job = _batch_job(srcs, width, height, pix_fmt, demux_config, decode_config, filter_desc,
                     device_config)
    loop = asyncio.get_running_loop()
    workers = [loop.run_in_executor(None, job.run_worker) for _ in range(min(len(job), default_workers()))]
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        # Workers not started yet never will (their futures are cancelled); the running
        # ones stop after the image they are on. Return only when they have.
        job.cancel()
        while job.running:
            await asyncio.sleep(0.001)
        raise
    buf = job.finish(strict)
    if device_config is not None:
        return await async_transfer_buffer(buf, device_config=device_config)
    return buf


async def _run(func, *args, **kwargs):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(func, *args, **kwargs))


async def async_demux_image(src, *, demux_config: DemuxConfig | None = None) -> ImagePackets:
    """:func:`demux_image` on the running loop's executor."""
    return await _run(demux_image, src, demux_config=demux_config)


async def async_decode_packets(
    packets: ImagePackets, *, decode_config: DecodeConfig | None = None, filter_desc: str | None = None
) -> ImageFrames:
    """:func:`decode_packets` on the running loop's executor."""
    return await _run(decode_packets, packets, decode_config=decode_config, filter_desc=filter_desc)


async def async_convert_frames(frames) -> CPUBuffer:
    """:func:`convert_frames` on the running loop's executor."""
    return await _run(convert_frames, frames)


async def async_transfer_buffer(buffer: CPUBuffer, *, device_config: CUDAConfig):
    """:func:`transfer_buffer` on the running loop's executor."""
    return await _run(transfer_buffer, buffer, device_config=device_config)
