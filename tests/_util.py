"""Helpers shared by the tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import spdl.io

# ---------------------------------------------------------------------------
# Synthetic content
# ---------------------------------------------------------------------------

SIZES = [(1, 1), (3, 5), (301, 199), (640, 480), (1023, 767)]  # (width, height)


def synth_rgb(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A photo-like RGB image (H, W, 3) uint8: gradients, a few hard edges, mild noise.

    Smooth content with some edges is what JPEG is made for; pure noise would
    make every lossy codec (and every chroma upsampler) look much worse than
    on real images.
    """
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx = x / max(w - 1, 1)
    fy = y / max(h - 1, 1)
    r = 40 + 180 * fx + 20 * np.sin(6.0 * fy + seed)
    g = 30 + 190 * fy + 15 * np.cos(5.0 * fx)
    b = 200 - 150 * (fx + fy) / 2 + 25 * np.sin(9.0 * fx * fy)
    img = np.stack([r, g, b], axis=-1)
    # a few solid rectangles (hard edges, saturated colours)
    for k in range(3):
        x0, y0 = rng.randint(0, max(w, 1)), rng.randint(0, max(h, 1))
        x1, y1 = min(w, x0 + max(1, w // 4)), min(h, y0 + max(1, h // 4))
        img[y0:y1, x0:x1] = rng.randint(0, 256, size=3)
    img += rng.normal(0, 3, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def smooth_rgb(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Photo-like content without hard colour edges: gradients and mild noise."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx = x / max(w - 1, 1)
    fy = y / max(h - 1, 1)
    r = 40 + 180 * fx + 20 * np.sin(6.0 * fy + seed)
    g = 30 + 190 * fy + 15 * np.cos(5.0 * fx)
    b = 200 - 75 * (fx + fy) + 25 * np.sin(9.0 * fx * fy)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 3, size=(h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def synth_gray16(w: int, h: int) -> np.ndarray:
    """A 16-bit ramp (H, W) uint16 whose low bytes vary (not multiples of 257)."""
    y, x = np.mgrid[0:h, 0:w]
    v = (x * 65535 // max(w - 1, 1) + y * 977) % 65536
    v[0, 0] = 0x1234
    return v.astype(np.uint16)


def synth_rgb48(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    r = x * 65535 // max(w - 1, 1)
    g = y * 65535 // max(h - 1, 1)
    b = (x * 131 + y * 257 + 4097) % 65536
    return np.stack([r, g, b], axis=-1).astype(np.uint16)


def write_png16(path: Path, arr: np.ndarray) -> None:
    """Write a 16-bit-per-sample PNG (gray (H, W) or RGB (H, W, 3)) without any library."""
    arr = np.asarray(arr, dtype=np.uint16)
    h, w = arr.shape[:2]
    color_type = 0 if arr.ndim == 2 else 2
    be = arr.astype(">u2").reshape(h, -1).tobytes()
    row = len(be) // h
    raw = b"".join(b"\x00" + be[i * row:(i + 1) * row] for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def gif_palette_frames(w: int, h: int, n: int = 3):
    """n paletted frames with an exact, known palette, each visibly different."""
    rng = np.random.RandomState(7)
    palette = rng.randint(0, 256, size=(256, 3)).astype(np.uint8)
    palette[0] = (0, 0, 0)
    frames = []
    y, x = np.mgrid[0:h, 0:w]
    for k in range(n):
        idx = ((x // 7 + y // 5 + 37 * k) % 200 + 1).astype(np.uint8)
        im = Image.frombytes("P", (w, h), idx.tobytes())
        im.putpalette(palette.tobytes())
        frames.append(im)
    return frames, palette


# ---------------------------------------------------------------------------
# Reference decoding
# ---------------------------------------------------------------------------


def pil_rgb(path, mode: str = "RGB") -> np.ndarray:
    with Image.open(path) as im:
        im.seek(0)
        return np.asarray(im.convert(mode))


def diff_stats(a, b) -> tuple[float, float, int]:
    """(mean, 99.9th percentile, max) of the absolute difference of two arrays."""
    a = np.asarray(a).astype(np.int64)
    b = np.asarray(b).astype(np.int64)
    assert a.shape == b.shape, (a.shape, b.shape)
    d = np.abs(a - b)
    return float(d.mean()), float(np.percentile(d, 99.9)), int(d.max())


def np_batch(buf) -> np.ndarray:
    return spdl.io.to_numpy(buf)


def rss_bytes() -> int:
    """Resident memory, after releasing the freed batches the allocator keeps for reuse
    (a cache of at most two blocks, not a leak)."""
    from spdl.io import _buffer

    _buffer._pool_trim()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
