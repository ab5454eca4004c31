"""spdl.io as a typed user writes it; tests/test_typing.py checks it with ``mypy --strict``.

    python examples/typed_example.py       # runs it: makes its own PNGs, loads them (GPU part with a GPU)
    python -m mypy --strict examples/typed_example.py

Every ``assert_type`` below is checked by mypy, not at run time: the loaders return
``CPUBuffer`` without ``device_config`` and ``CUDABuffer`` with one, never ``Any``.
"""

from __future__ import annotations

import asyncio
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

import spdl.io
from spdl.io import (
    BatchLoadError,
    CPUBuffer,
    CUDABuffer,
    CUDAConfig,
    DecodeConfig,
    DemuxConfig,
    ImageFrames,
    ImagePackets,
    SourceError,
    SpdlIOError,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

#: What to_numpy returns: a uint8, uint16, float16 or float32 array of any shape.
Pixels = np.ndarray[tuple[int, ...], np.dtype[np.uint8 | np.uint16 | np.float16 | np.float32]]


def png(width: int, height: int, seed: int) -> bytes:
    """An RGB PNG made with the standard library, so the example needs no files."""
    row = bytes((seed + 7 * x) % 256 for x in range(3 * width))
    raw = b"".join(b"\x00" + row[y % 3:] + row[: y % 3] for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def make_sources(folder: Path) -> list[str | Path | bytes | bytearray | memoryview]:
    """One source of each kind the loaders take: str and Path files, bytes-like data."""
    files = [folder / f"img{i}.png" for i in range(2)]
    for i, f in enumerate(files):
        f.write_bytes(png(40 + 8 * i, 30, i))
    return [str(files[0]), files[1], png(32, 32, 2), bytearray(png(48, 24, 3)),
            memoryview(png(24, 48, 4))]


def on_cpu(srcs: list[str | Path | bytes | bytearray | memoryview]) -> None:
    buf = spdl.io.load_image_batch(srcs, width=64, height=48)
    assert_type(buf, CPUBuffer)
    arr = spdl.io.to_numpy(buf)
    assert_type(arr, Pixels)
    assert arr.shape == (len(srcs), 48, 64, 3) and buf.shape == arr.shape

    gray = spdl.io.load_image_batch(
        srcs, width=32, height=32, pix_fmt="gray", scale_mode="crop",
        demux_config=DemuxConfig(max_file_size=1 << 20), decode_config=DecodeConfig(max_pixels=1 << 20),
    )
    assert_type(gray, CPUBuffer)
    print("cpu:", buf, gray.shape, gray.pix_fmt)

    # With strict=False the batch holds the images that loaded; the others are in .errors.
    partial = spdl.io.load_image_batch([*srcs, b"not an image"], width=16, height=16, strict=False)
    assert_type(partial.indices, tuple[int, ...])
    assert_type(partial.errors, dict[int, SpdlIOError])
    assert list(partial.errors) == [len(srcs)]

    try:
        spdl.io.load_image_batch([b"not an image", "/no/such/file.png"], width=16, height=16)
    except BatchLoadError as e:
        for index, err in e.errors.items():
            print(f"  input {index}: {type(err).__name__} at {err.stage}: {err}")

    try:
        spdl.io.demux_image("/no/such/file.png")
    except SourceError as e:
        print("  demux:", e.source, e.stage)


def stages(srcs: list[str | Path | bytes | bytearray | memoryview]) -> CPUBuffer:
    """demux_image -> decode_packets -> convert_frames, by hand."""
    frames: list[ImageFrames] = []
    for src in srcs:
        packets = spdl.io.demux_image(src)
        assert_type(packets, ImagePackets)
        frame = spdl.io.decode_packets(packets, filter_desc="scale=32:32,format=rgb24")
        assert_type(frame, ImageFrames)
        frames.append(frame)
    buf = spdl.io.convert_frames(frames)
    assert_type(buf, CPUBuffer)
    return buf


async def in_async(srcs: list[str | Path | bytes | bytearray | memoryview]) -> None:
    buf = await spdl.io.async_load_image_batch(srcs, width=64, height=64, scale_mode="pad")
    assert_type(buf, CPUBuffer)
    packets = await spdl.io.async_demux_image(srcs[0])
    frame = await spdl.io.async_decode_packets(packets)
    one = await spdl.io.async_convert_frames([frame])
    assert_type(one, CPUBuffer)
    print("async:", buf.shape, one.shape)


def on_gpu(srcs: list[str | Path | bytes | bytearray | memoryview]) -> None:
    cfg = CUDAConfig(device_index=0)
    buf = spdl.io.load_image_batch(srcs, width=64, height=64, device_config=cfg)
    assert_type(buf, CUDABuffer)
    nv = spdl.io.load_image_batch_nvjpeg(srcs, width=64, height=64, device_config=cfg)
    assert_type(nv, CUDABuffer)
    moved = spdl.io.transfer_buffer(spdl.io.load_image_batch(srcs, width=8, height=8),
                                    device_config=cfg)
    assert_type(moved, CUDABuffer)

    async def both() -> tuple[CUDABuffer, CUDABuffer]:
        a = await spdl.io.async_load_image_batch(srcs, width=64, height=64, device_config=cfg)
        b = await spdl.io.async_load_image_batch_nvjpeg(srcs, width=64, height=64,
                                                       device_config=cfg)
        return a, b

    a, b = asyncio.run(both())
    print("gpu:", buf.shape, nv.shape, a.shape, b.shape, moved.shape)


def maybe_on_gpu(srcs: list[str | Path | bytes | bytearray | memoryview],
                 device: CUDAConfig | None) -> CPUBuffer | CUDABuffer:
    """A device chosen at run time: the result is either kind of buffer."""
    buf = spdl.io.load_image_batch(srcs, width=16, height=16, device_config=device)
    assert_type(buf, CPUBuffer | CUDABuffer)
    return buf


def with_torch(buf: CPUBuffer) -> None:
    try:
        t = spdl.io.to_torch(buf)
    except ImportError:
        print("torch: not installed")
        return
    print("torch:", t.shape)


def main() -> None:
    spdl.io.set_ffmpeg_log_level(-8)
    assert "png_pipe" in spdl.io.IMAGE_DEMUXERS
    with tempfile.TemporaryDirectory() as tmp:
        srcs = make_sources(Path(tmp))
        on_cpu(srcs)
        print("stages:", stages(srcs).shape)
        asyncio.run(in_async(srcs))
        maybe_on_gpu(srcs, None)
        with_torch(spdl.io.load_image_batch(srcs, width=8, height=8))
        if spdl.io.cuda_available():
            on_gpu(srcs)
        else:
            print("gpu: no CUDA device here, skipped")


if __name__ == "__main__":
    main()
