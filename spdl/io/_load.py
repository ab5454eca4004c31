"""The public loading functions: the stages, the batch loaders, and their async twins.

Each stage is a plain function that releases the GIL while it works; each
``async_`` twin runs it on the running loop's executor. The batch loaders take
one set of keyword arguments, compiled once into a LoadPlan (spdl.io._plan),
and hand the plan to a backend: the CPU batch here, nvJPEG in spdl.io._nvjpeg_batch.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, ParamSpec, TypeVar, overload


from spdl.io._batch import BatchJob, default_workers
from spdl.io._buffer import CPUBuffer
from spdl.io._config import CUDAConfig, DemuxConfig
from spdl.io._layout import convert_frames
from spdl.io._decode import ImageFrames, decode_packets
from spdl.io._demux import ImagePackets, demux_image
from spdl.io._plan import LoadPlan, check_num_threads, compile_plan
from spdl.io._types import FrameOptions, LoadOptions, Source, Sources

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from spdl.io._cuda_buffer import CUDABuffer

_P = ParamSpec("_P")
_R = TypeVar("_R")
_F = TypeVar("_F", bound=Callable[..., object])

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
    "set_num_threads",
    "get_num_threads",
]

_num_threads: int | None = None


def set_num_threads(num_threads: int | None) -> None:
    """Set how many workers decode a batch when a loader is not given ``num_threads``
    (the async loaders and the dataset iterators); None restores the default, the
    CPUs this process may run on. Several processes on one machine each set their
    share, so they do not oversubscribe the cores."""
    global _num_threads
    _num_threads = check_num_threads(num_threads)


def get_num_threads() -> int:
    """How many workers decode a batch by default: set_num_threads's value, else the CPUs
    this process may run on."""
    return _num_threads if _num_threads is not None else default_workers()


def transfer_buffer(buffer: CPUBuffer, *, device_config: CUDAConfig) -> CUDABuffer:
    """Copy a CPU batch to a CUDA device; see spdl.io._transfer."""
    from spdl.io._transfer import transfer_buffer as _transfer

    return _transfer(buffer, device_config=device_config)


LOAD_DOC = """
    Args:
        srcs: File paths (str, os.PathLike) or bytes-like objects (bytes,
            bytearray, memoryview).
        width, height: The size of every image in the batch. None for both
            keeps the decoded size (the images must then share one size); one
            None follows the aspect ratio of the other.
        pix_fmt: ``rgb24`` (default), ``bgr24``, ``rgba``, ``gray``,
            ``gray16``, ``yuv444p``, ``rgbp`` (planar RGB), ``yuv420p`` (I420
            planes; even width and height), or None for the decoded format.
        scale_mode: With width and height: ``"pad"`` (default) fits the image
            inside, keeping its aspect ratio, centred on black; ``"crop"``
            fills the box, keeping the aspect ratio, and crops the overflow,
            centred; ``"stretch"`` (or None) ignores the aspect ratio.
        scale_algo: ``"bicubic"`` (default), ``"bilinear"``,
            ``"fast_bilinear"``, ``"neighbor"``, ``"area"`` or ``"lanczos"``.
        demux_config: A DemuxConfig, or None.
        decode_config: A DecodeConfig, or None.
        filter_desc: An FFmpeg filter description that libavfilter runs on
            each decoded image, or None (default). The resize and conversion
            above then apply to the graph's output: pass width=None,
            height=None and pix_fmt=None to take the graph's output as it is.
        crop: Training crops, each resized (stretched) to width x height, which
            must both be given: ``spdl.io.RandomResizedCrop(scale, ratio)``
            (torchvision's), ``spdl.io.CenterCrop(fraction)``, or one
            ``(x, y, w, h)`` box per input, in the image's pixels. None
            (default): the whole image, placed by scale_mode. A JPEG crop is
            decoded from its region only.
        hflip: Mirror images left to right: False (default), True, a
            probability, or one bool per input.
        seed: The seed of crop and hflip draws, which are a function of the
            seed and the input's index only (the same on any machine, thread
            count or backend); None draws a fresh seed for each batch.
        dtype: ``"uint8"`` (default), ``"float32"`` or ``"float16"``: floats
            are the samples scaled to 0-1, then ``(x - mean) / std`` per
            channel when mean and std are given (torchvision's ToDtype and
            Normalize), all in the one write into the batch.
        mean, std: Per-channel normalisation of float output (a number, or one
            per channel), or None.
        layout: ``"NHWC"`` (default) or ``"NCHW"`` (channels first).
            dtype, layout and hflip need width, height and a packed pix_fmt
            (rgb24, bgr24, rgba, gray).
        num_threads: How many threads decode the batch: None (default) is the
            calling thread only for load_image_batch, and
            spdl.io.get_num_threads() (the CPUs this process may use, or what
            spdl.io.set_num_threads set) for the async loader.
        device_config: A CUDAConfig to return the batch on a GPU, or None.
        strict: If True, any failure raises BatchLoadError naming the failed
            inputs. If False, the batch holds the images that loaded, in input
            order; ``buf.indices`` gives each row's input index and
            ``buf.errors`` maps each failed input's index to its exception.

    Returns:
        CPUBuffer of shape (N, H, W, C) for packed formats (N, C, H, W with
        layout="NCHW"), (N, C, H, W) for planar ones (yuv444p, rgbp),
        (N, 1, H * 3 / 2, W) for 4:2:0 (yuv420p); a CUDABuffer with
        ``device_config``. With crop or hflip, ``buf.crops[i]`` is the
        ``(x, y, w, h, flipped)`` row i was made from, in the source image's
        pixels (for transforming labels).
"""


def plan_loader(func: _F) -> _F:
    """Give a batch loader the loaders' one signature (srcs, then compile_plan's keyword
    arguments) and their one argument list, after its own summary. (Type checkers read
    the same arguments from LoadOptions, which mypy checks against compile_plan.)"""
    params = inspect.signature(compile_plan).parameters.values()
    srcs = inspect.Parameter("srcs", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    setattr(func, "__signature__", inspect.Signature([srcs, *params]))
    func.__doc__ = inspect.cleandoc(func.__doc__ or "") + "\n" + inspect.cleandoc(LOAD_DOC)
    return func


def _batch_job(srcs: Sources, plan: LoadPlan, indices: Sequence[int] | None) -> BatchJob:
    allocator = None
    if plan.device_config is not None:
        # A batch headed for the GPU is decoded straight into page-locked memory.
        from spdl.io._cuda_device import check_device
        from spdl.io._pinned import host_allocator

        check_device(plan.device_config)
        allocator = host_allocator(plan.device_config)
    return BatchJob(srcs, plan, allocator, indices)


def run_job(job: BatchJob, workers: int, executor: Executor | None = None) -> None:
    """Run job on the calling thread and workers - 1 more: the executor's, or new threads.

    Returns when every worker has; an exception (KeyboardInterrupt) cancels the job first."""
    extra = min(len(job), workers) - 1
    threads: list[threading.Thread] = []
    futures = []
    try:
        if extra > 0 and executor is not None:
            futures = [executor.submit(job.run_worker) for _ in range(extra)]
        elif extra > 0:
            threads = [threading.Thread(target=job.run_worker, name="spdl-decode", daemon=True)
                       for _ in range(extra)]
            for t in threads:
                t.start()
        job.run_worker()
    except BaseException:
        job.cancel()
        raise
    finally:
        for t in threads:
            t.join()
        for f in futures:
            if not f.cancel():
                f.result()


def run_plan(srcs: Sources, plan: LoadPlan, indices: Sequence[int] | None = None,
             executor: Executor | None = None) -> CPUBuffer:
    """Load srcs on the CPU as plan says, in the calling thread (and plan.num_threads - 1
    more: the executor's, or threads of its own); the batch stays on the host.

    indices, if given, are the sources' indices in the caller's list (errors name bytes
    sources by them)."""
    job = _batch_job(srcs, plan, indices)
    run_job(job, plan.num_threads or 1, executor)
    return job.finish(plan.strict)


async def async_run_plan(srcs: Sources, plan: LoadPlan,
                         indices: Sequence[int] | None = None) -> CPUBuffer:
    """Load srcs on the CPU as plan says, on workers of the running loop's executor."""
    job = _batch_job(srcs, plan, indices)
    loop = asyncio.get_running_loop()
    n = min(len(job), plan.num_threads or get_num_threads())
    workers = [loop.run_in_executor(None, job.run_worker) for _ in range(n)]
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        # Workers not started yet never will (their futures are cancelled); the running
        # ones stop after the image they are on. Return only when they have.
        job.cancel()
        while job.running:
            await asyncio.sleep(0.001)
        raise
    return job.finish(plan.strict)


@overload
def load_image_batch(srcs: Sources, *, device_config: None = None,
                     **options: Unpack[LoadOptions]) -> CPUBuffer: ...
@overload
def load_image_batch(srcs: Sources, *, device_config: CUDAConfig,
                     **options: Unpack[LoadOptions]) -> CUDABuffer: ...
@plan_loader
def load_image_batch(srcs: Sources, *, device_config: CUDAConfig | None = None,
                     **options: Unpack[LoadOptions]) -> CPUBuffer | CUDABuffer:
    """Load images (paths or bytes) into one batch, in the calling thread.

    The images are processed one after another with the GIL released; pass
    ``num_threads`` (or use :func:`async_load_image_batch`) to spread them over threads.
    """
    plan = compile_plan(device_config=device_config, **options)
    buf = run_plan(srcs, plan)
    if plan.device_config is not None:
        return transfer_buffer(buf, device_config=plan.device_config)
    return buf


@overload
async def async_load_image_batch(srcs: Sources, *, device_config: None = None,
                                 **options: Unpack[LoadOptions]) -> CPUBuffer: ...
@overload
async def async_load_image_batch(srcs: Sources, *, device_config: CUDAConfig,
                                 **options: Unpack[LoadOptions]) -> CUDABuffer: ...
@plan_loader
async def async_load_image_batch(srcs: Sources, *, device_config: CUDAConfig | None = None,
                                 **options: Unpack[LoadOptions]) -> CPUBuffer | CUDABuffer:
    """Load images (paths or bytes) into one batch, concurrently.

    The images are demuxed, decoded and resized on the running loop's
    executor, each written straight into its row of the batch.
    """
    plan = compile_plan(device_config=device_config, **options)
    buf = await async_run_plan(srcs, plan)
    if plan.device_config is not None:
        return await async_transfer_buffer(buf, device_config=plan.device_config)
    return buf


async def _run(func: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(func, *args, **kwargs))


async def async_demux_image(src: Source, *, demux_config: DemuxConfig | None = None) -> ImagePackets:
    """:func:`demux_image` on the running loop's executor."""
    return await _run(demux_image, src, demux_config=demux_config)


async def async_decode_packets(packets: ImagePackets, **options: Unpack[FrameOptions]) -> ImageFrames:
    """:func:`decode_packets` (same keyword arguments) on the running loop's executor."""
    return await _run(decode_packets, packets, **options)


async def async_convert_frames(frames: Iterable[ImageFrames]) -> CPUBuffer:
    """:func:`convert_frames` on the running loop's executor."""
    return await _run(convert_frames, frames)


async def async_transfer_buffer(buffer: CPUBuffer, *, device_config: CUDAConfig) -> CUDABuffer:
    """:func:`transfer_buffer` on the running loop's executor."""
    return await _run(transfer_buffer, buffer, device_config=device_config)
